/**
 * Eternal TCP: framing, sealing, backed writer/reader and the reconnecting
 * connection with multiplexed channels. Knows nothing of terminals.
 *
 * @module
 */

export { BackedReader, type PacketVerdict } from "./backed_reader.ts";
export {
  BackedWriter,
  CannotResumeError,
  DEFAULT_WINDOW_BYTES,
} from "./backed_writer.ts";
export {
  Channel,
  ChannelClosedError,
  DEFAULT_CHANNEL_WINDOW_BYTES,
  MAX_CHUNK_BYTES,
} from "./channel.ts";
export {
  type AttachOptions,
  type ConnectionEvent,
  EternalConnection,
  type EternalConnectionOptions,
  SessionClosedError,
  type SessionEnd,
} from "./connection.ts";
export {
  deriveSessionKeys,
  open,
  preloadPacketCrypto,
  seal,
  type SessionKeys,
  type SessionRole,
} from "./crypto.ts";
export {
  encodeFrame,
  FrameError,
  FrameReader,
  MAX_FRAME_BYTES,
} from "./frame.ts";
export {
  clientHandshake,
  describeRefusal,
  HandshakeRefusedError,
  readHello,
  refuse,
  serverHandshake,
  type ServerHandshakeOptions,
  type SessionLookup,
} from "./handshake.ts";
export { acceptEach } from "./accept_loop.ts";
export { type BytePipe, closeQuietly, writeAll } from "./pipe.ts";
export {
  keepConnected,
  type KeepConnectedOptions,
  ReconnectGaveUpError,
  type ReconnectLoop,
  type ReconnectStatus,
} from "./reconnect.ts";
export {
  HandshakeWatch,
  type RelayCounters,
  relayPipes,
  type RelayPipesOptions,
} from "./relay_pipes.ts";
export { ReliableStream } from "./reliability.ts";
export { probeSession, type SessionProbeAnswer } from "./session_probe.ts";
export { ReplayFilter } from "./replay_filter.ts";
export {
  decodeSessionSecret,
  encodeSessionSecret,
  fromHex,
  generateSessionSecret,
  type SessionSecret,
  toHex,
} from "./session_secret.ts";
export {
  encodeRefuse,
  PROTOCOL_VERSION,
  ProtocolError,
  RefuseCode,
} from "./wire.ts";
export {
  KEEPALIVE_MS as DEFAULT_KEEPALIVE_MS,
  livenessForKeepalive,
  MAX_KEEPALIVE_MS,
  MIN_KEEPALIVE_MS,
} from "./timers.ts";
