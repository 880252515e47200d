/**
 * Every fuzz target, in the order they run.
 *
 * @module
 */

import type { Target } from "./_engine.ts";
import { destinationTarget, escapeTarget, unitsTarget } from "./targets/cli.ts";
import { controlSocketTarget } from "./targets/control_socket.ts";
import { frameReaderTarget } from "./targets/frame.ts";
import {
  clientTarget,
  helloTarget,
  serverTarget,
} from "./targets/handshake.ts";
import { packetOpenTarget } from "./targets/packet.ts";
import {
  bootstrapTarget,
  controlTarget,
  lineReaderTarget,
  readyTarget,
  routerTarget,
  sessionRoundTripTarget,
} from "./targets/session.ts";
import { wireDecodeTarget, wireRoundTripTarget } from "./targets/wire.ts";
import { tunnelSpecTarget } from "./targets/tunnel.ts";

/** All targets. */
export const TARGETS: Target[] = [
  frameReaderTarget,
  wireDecodeTarget,
  wireRoundTripTarget,
  packetOpenTarget,
  helloTarget,
  serverTarget,
  clientTarget,
  bootstrapTarget,
  readyTarget,
  controlTarget,
  routerTarget,
  lineReaderTarget,
  sessionRoundTripTarget,
  unitsTarget,
  destinationTarget,
  escapeTarget,
  controlSocketTarget,
  tunnelSpecTarget,
];
