import assert from "node:assert/strict";
import {
  formatTunnel,
  parseSshForward,
  parseTunnelSpecs,
  TunnelSpecError,
  validateEndpoint,
} from "../../src/session/tunnel_spec.ts";

const shown = (text: string, direction: "forward" | "reverse" = "forward") =>
  parseTunnelSpecs(text, direction).map(formatTunnel);

Deno.test("SRC:DST ports bind to loopback and dial loopback", () => {
  assert.deepEqual(parseTunnelSpecs("8000:9000", "forward"), [{
    direction: "forward",
    listen: { kind: "tcp", host: "127.0.0.1", port: 8000 },
    target: { kind: "tcp", host: "127.0.0.1", port: 9000 },
  }]);
});

Deno.test("port ranges of equal length pair up; comma lists add up", () => {
  assert.deepEqual(shown("8000-8002:9000-9002,7000:7001"), [
    "127.0.0.1:8000 -> 127.0.0.1:9000",
    "127.0.0.1:8001 -> 127.0.0.1:9001",
    "127.0.0.1:8002 -> 127.0.0.1:9002",
    "127.0.0.1:7000 -> 127.0.0.1:7001",
  ]);
});

Deno.test("ssh style [bind:]port:host:port, IPv6 in brackets", () => {
  assert.deepEqual(shown("8080:example.org:80"), [
    "127.0.0.1:8080 -> example.org:80",
  ]);
  assert.deepEqual(shown("0.0.0.0:8080:localhost:80"), [
    "0.0.0.0:8080 -> localhost:80",
  ]);
  assert.deepEqual(shown("[::1]:8080:[fe80::1%eth0]:80"), [
    "[::1]:8080 -> [fe80::1%eth0]:80",
  ]);
  assert.deepEqual(shown("*:8080:db:5432"), ["0.0.0.0:8080 -> db:5432"]);
});

Deno.test("Unix socket paths on either end", () => {
  assert.deepEqual(shown("/tmp/d.sock:/var/run/docker.sock"), [
    "/tmp/d.sock -> /var/run/docker.sock",
  ]);
  assert.deepEqual(shown("8080:/run/app.sock"), [
    "127.0.0.1:8080 -> /run/app.sock",
  ]);
  assert.deepEqual(shown("/tmp/pg.sock:db:5432"), ["/tmp/pg.sock -> db:5432"]);
  assert.deepEqual(shown("[::1]:8080:/run/app.sock"), [
    "[::1]:8080 -> /run/app.sock",
  ]);
});

Deno.test("reverse ENVVAR:path makes an env socket", () => {
  assert.deepEqual(parseTunnelSpecs("MY_SOCK:/tmp/x.sock", "reverse"), [{
    direction: "reverse",
    listen: { kind: "env", name: "MY_SOCK" },
    target: { kind: "unix", path: "/tmp/x.sock" },
  }]);
});

Deno.test("every malformed spec is refused naming the bad part", () => {
  const cases: Array<[string, RegExp, ("forward" | "reverse")?]> = [
    ["", /-t: empty tunnel/],
    ["8000", /-t '8000': expected SRC:DST/],
    ["8000:", /missing destination/],
    [":9000", /missing source/],
    ["80x:90", /source port '80x' is not a port/],
    ["8000:70000", /destination port 70000 is out of range/],
    ["0:80", /source port 0 is out of range/],
    ["8000-8002:9000-9001", /source has 3 ports, destination 2/],
    ["8005-8000:9005-9000", /source port range '8005-8000' runs backwards/],
    ["8000-8002:9000", /source has 3 ports, destination 1/],
    ["1-2000:1-2000", /more than 1024 ports/],
    ["8080:::1:80", /too many ':'.*brackets/],
    ["[::1:8080:h:80", /unbalanced '\['/],
    ["8080:[not host]:80", /'\[not host\]' is not an IPv6 address or host/],
    ["8080:bad_host!:80", /destination host 'bad_host!' is not a host/],
    ["SOCK:/tmp/a", /ENVVAR sources are for -r only/],
    ["8000:9000,oops", /-t 'oops': expected SRC:DST/],
    ["/" + "a".repeat(120) + ":80", /longer than 107 bytes/],
    ["8000:9000,", /-t '': empty tunnel/],
    ["x:y:z:w:v", /too many ':'/],
    ["1.2.3.4:80x:h:80", /source port '80x'/],
    ["", /-r: empty tunnel/, "reverse"],
  ];
  for (const [text, message, direction] of cases) {
    assert.throws(
      () => parseTunnelSpecs(text, direction ?? "forward"),
      (error: Error) => {
        assert.ok(error instanceof TunnelSpecError, text);
        assert.match(error.message, message, `for '${text}'`);
        assert.ok(!error.message.includes("\n"));
        return true;
      },
    );
  }
});

Deno.test("ssh config LocalForward/RemoteForward strings", () => {
  assert.equal(
    formatTunnel(parseSshForward("8080 localhost:80", "forward")),
    "127.0.0.1:8080 -> localhost:80",
  );
  assert.equal(
    formatTunnel(parseSshForward("[::1]:2222   [::1]:22", "reverse")),
    "[::1]:2222 -> [::1]:22",
  );
  assert.equal(
    formatTunnel(parseSshForward("/tmp/l.sock /run/r.sock", "forward")),
    "/tmp/l.sock -> /run/r.sock",
  );
  // Exactly as `ssh -G` prints them (OpenSSH 9.2).
  assert.equal(
    formatTunnel(parseSshForward("8080 [localhost]:80", "forward")),
    "127.0.0.1:8080 -> localhost:80",
  );
  assert.equal(
    formatTunnel(parseSshForward("7000 /tmp/x.sock", "reverse")),
    "127.0.0.1:7000 -> /tmp/x.sock",
  );
  assert.throws(
    () => parseSshForward("8080 localhost", "forward"),
    /LocalForward '8080 localhost': .*not a port/,
  );
});

Deno.test("endpoints from the network are checked", () => {
  assert.deepEqual(validateEndpoint({ kind: "tcp", host: "::1", port: 22 }), {
    kind: "tcp",
    host: "::1",
    port: 22,
  });
  for (
    const bad of [
      null,
      { kind: "tcp", host: "a b", port: 1 },
      { kind: "tcp", host: "h", port: 0 },
      { kind: "unix", path: "relative" },
      { kind: "unix", path: "/a\0b" },
      { kind: "env", name: "1X" },
      { kind: "other" },
    ]
  ) assert.throws(() => validateEndpoint(bad));
});
