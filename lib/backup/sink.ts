// Writing into a child's stdin (the sink) from the dump: with backpressure, and with a
// distinct error when the sink went away, so the stage that closed it can explain why.
import type { Readable, Writable } from "node:stream";

/** The sink (the compressor's stdin) closed while the dump was still writing; the stage that closed it says why. */
export class SinkClosedError extends Error {
  constructor() {
    super("the compressor stopped reading the dump");
    this.name = "SinkClosedError";
  }
}

/** Writes `chunk`, waiting while the sink is full; throws SinkClosedError when it went away. */
export async function put(sink: Writable, chunk: Buffer): Promise<void> {
  if (sink.destroyed || sink.writableEnded) throw new SinkClosedError();
  if (sink.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const drained = () => {
      sink.off("drain", drained).off("close", gone).off("error", gone);
      resolve();
    };
    const gone = () => {
      sink.off("drain", drained).off("close", gone).off("error", gone);
      reject(new SinkClosedError());
    };
    sink.once("drain", drained).once("close", gone).once("error", gone);
  });
}

/** Hands every chunk of `from` to `onChunk` and then to `sink`, pausing `from` while the sink is full. */
export function relay(from: Readable, sink: Writable, onChunk: (b: Buffer) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (sink.destroyed || sink.writableEnded) {
      reject(new SinkClosedError());
      return;
    }
    const onData = (b: Buffer) => {
      try {
        onChunk(b);
      } catch (err) {
        onError(err as Error);
        return;
      }
      if (!sink.write(b)) from.pause();
    };
    const onDrain = () => from.resume();
    const cleanup = () => {
      from.off("data", onData).off("end", onEnd).off("error", onError);
      sink.off("drain", onDrain).off("close", onGone).off("error", onGone);
    };
    const onEnd = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onGone = () => onError(new SinkClosedError());
    from.on("data", onData).once("end", onEnd).once("error", onError);
    sink.on("drain", onDrain).once("close", onGone).once("error", onGone);
  });
}
