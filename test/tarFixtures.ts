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

export interface TarMember {
  header: Buffer;
  /** The name field as written (pg_basebackup uses no prefix). */
  name: string;
  data: Buffer;
}

/** The members of an uncompressed tar, up to its end blocks. */
export function tarMembers(tar: Buffer): TarMember[] {
  const out: TarMember[] = [];
  for (let at = 0; at + 512 <= tar.length; ) {
    const header = tar.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const size = parseInt(header.toString("latin1", 124, 136).replace(/\0.*$/s, "").trim() || "0", 8);
    const nameEnd = header.indexOf(0);
    out.push({ header: Buffer.from(header), name: header.toString("utf8", 0, nameEnd < 0 || nameEnd > 100 ? 100 : nameEnd), data: Buffer.from(tar.subarray(at + 512, at + 512 + size)) });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/** A tar of `members` (headers as given, data padded) with end blocks. */
export function buildTar(members: readonly TarMember[]): Buffer {
  return Buffer.concat([...members.flatMap((m) => [m.header, tarData(m.data)]), TAR_END]);
}

/** A member's header with another mode (checksum recomputed). */
export function withMode(header: Buffer, mode: number): Buffer {
  const h = Buffer.from(header);
  h.write(`${mode.toString(8).padStart(7, "0")}\0`, 100);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

/** A file member of `m`'s kind with new data (size and checksum recomputed). */
export function withData(m: TarMember, data: string | Buffer): TarMember {
  return { header: tarHeader(m.name, "0", Buffer.byteLength(data)), name: m.name, data: Buffer.from(data) };
}
