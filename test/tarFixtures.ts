// Tar archives built byte by byte for the tar reader's tests: ustar headers as pg_basebackup
// writes them (src/port/tar.c), and the shapes it never writes (setuid modes, symlinks, "..",
// pax and GNU headers), with valid checksums so only the policy can refuse them.

export interface HeaderOptions {
  mode?: number;
  linkname?: string;
  magic?: string;
  prefix?: string;
  sizeField?: string;
  base256Size?: number;
}

/** One 512-byte header with a valid checksum. */
export function tarHeader(name: string, type: string, size = 0, o: HeaderOptions = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write(`${(o.mode ?? 0o600).toString(8).padStart(7, "0")}\0`, 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  if (o.base256Size !== undefined) {
    h[124] = 0x80;
    let n = o.base256Size;
    for (let i = 135; i > 124; i--) {
      h[i] = n % 256;
      n = Math.floor(n / 256);
    }
  } else {
    h.write(o.sizeField ?? `${size.toString(8).padStart(11, "0")}\0`, 124);
  }
  h.write("00000000000\0", 136);
  h.write(type, 156, "latin1");
  h.write(o.linkname ?? "", 157, 100);
  h.write(o.magic ?? "ustar\0", 257, "latin1");
  h.write("00", 263);
  if (o.prefix !== undefined) h.write(o.prefix, 345, 155);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

/** A member's data padded to whole blocks. */
export function tarData(data: Buffer | string): Buffer {
  const b = Buffer.from(data);
  return Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
}

/** A file member: header and padded data. */
export function tarFile(name: string, data: Buffer | string, o: HeaderOptions = {}): Buffer {
  return Buffer.concat([tarHeader(name, "0", Buffer.byteLength(data), o), tarData(data)]);
}

export const TAR_END = Buffer.alloc(1024);
