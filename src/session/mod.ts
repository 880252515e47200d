/**
 * What the client, the terminal process and the daemon agree on above the
 * transport: channels and control messages, the bootstrap and ready lines,
 * the session lifecycle, the router and control-socket protocols, and the
 * private runtime directory.
 *
 * @module
 */

export * from "./terminal_protocol.ts";
export * from "./runtime_dir.ts";
export * from "./line_reader.ts";
export * from "./router_protocol.ts";
export * from "./lifecycle.ts";
export * from "./relay_protocol.ts";
export * from "./tunnel_spec.ts";
export * from "./tunnel_protocol.ts";
export * from "./tunnel_mux.ts";
