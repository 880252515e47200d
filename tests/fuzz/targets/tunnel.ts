/**
 * Tunnel specs under fuzz.
 *
 * - tunnel.spec: parseTunnelSpecs and parseSshForward on mutated `-t`/`-r`
 *   values: either tunnels whose endpoints pass the network validator
 *   (ports 1-65535, hosts and paths of their documented shapes, ENVVAR only
 *   as a reverse source) and whose text form parses back to the same, or a
 *   one-line TunnelSpecError naming the flag and the part; never another
 *   exception.
 *
 * @module
 */

import {
  formatEndpoint,
  parseTunnelSpecs,
  type TunnelDirection,
  TunnelSpecError,
  validateEndpoint,
} from "../../../src/session/mod.ts";
import { preview, utf8Bytes, utf8Text } from "../_bytes.ts";
import {
  check,
  fail,
  type FuzzCase,
  FuzzFailure,
  type Target,
} from "../_engine.ts";
import { mutateText } from "../_mutate.ts";
import type { Random } from "../_rng.ts";

function randomSpec(r: Random): string {
  const port = () =>
    String(r.pick([1, 22, 80, 8080, 65535, 0, 65536, r.int(70000)]));
  const range = () => {
    const a = r.int(60000) + 1;
    return `${a}-${a + r.int(r.chance(0.9) ? 10 : 2000)}`;
  };
  const host = () =>
    r.pick([
      "localhost",
      "127.0.0.1",
      "[::1]",
      "[fe80::1%eth0]",
      "db.example",
      "*",
      "",
      "[x]",
    ]);
  const path = () =>
    r.pick(["/tmp/a.sock", "/run/é.sock", "/" + "p".repeat(r.int(130))]);
  const one = () => {
    switch (r.int(6)) {
      case 0:
        return `${port()}:${port()}`;
      case 1:
        return `${range()}:${range()}`;
      case 2:
        return `${port()}:${host()}:${port()}`;
      case 3:
        return `${host()}:${port()}:${host()}:${port()}`;
      case 4:
        return `${r.chance(0.5) ? path() : port()}:${
          r.chance(0.5) ? path() : port()
        }`;
      default:
        return `${r.pick(["SSH_AUTH_SOCK", "X", "1X", ""])}:${path()}`;
    }
  };
  const parts = Array.from({ length: 1 + r.int(3) }, one);
  return parts.join(",");
}

function runSpec(c: FuzzCase): string {
  const text = utf8Text(c.input);
  const direction: TunnelDirection = c.aux % 2 === 0 ? "forward" : "reverse";
  const flag = direction === "forward" ? "-t" : "-r";
  const labels: string[] = [];
  try {
    const specs = parseTunnelSpecs(text, direction);
    check(specs.length > 0, `parseTunnelSpecs(${preview(text)}) gave nothing`);
    for (const spec of specs) {
      check(spec.direction === direction, "direction");
      check(spec.target.kind !== "env", `an env target from ${preview(text)}`);
      if (spec.listen.kind === "env") {
        check(
          direction === "reverse",
          `an env source for -t: ${preview(text)}`,
        );
      }
      validateEndpoint(spec.listen);
      validateEndpoint(spec.target);
      // A single spec's text form (unix/tcp only) parses back the same.
      if (spec.listen.kind !== "env") {
        const again = parseTunnelSpecs(
          `${formatEndpoint(spec.listen)}:${formatEndpoint(spec.target)}`,
          direction,
        )[0];
        check(
          JSON.stringify(again) === JSON.stringify(spec),
          `${preview(text)}: ${JSON.stringify(spec)} came back as ${
            JSON.stringify(again)
          }`,
        );
      }
    }
    labels.push(`specs ${specs.length > 1 ? "n" : "1"}`);
  } catch (error) {
    if (error instanceof FuzzFailure) throw error;
    if (!(error instanceof TunnelSpecError)) {
      fail(
        `parseTunnelSpecs threw ${(error as Error)?.name}: ${
          (error as Error)?.message
        }`,
      );
    }
    check(
      !error.message.includes("\n") && error.message.startsWith(`${flag}`),
      `message ${preview(error.message)}`,
    );
    labels.push("refused");
  }
  return labels.join("+");
}

/** tunnel.spec target. */
export const tunnelSpecTarget: Target = {
  name: "tunnel.spec",
  description:
    "parseTunnelSpecs: valid endpoints that round-trip, or a one-line TunnelSpecError naming the flag",
  weight: 6,
  timeoutMs: 1000,
  generate: (r) => {
    let text = randomSpec(r);
    if (r.chance(0.5)) text = mutateText(r, text);
    return { input: utf8Bytes(text), aux: r.int(2), origin: "tunnel spec" };
  },
  run: runSpec,
};
