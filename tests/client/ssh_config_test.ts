/**
 * The ssh config as OpenSSH itself reads it (`ssh -G`): a real config file
 * with a Host alias, `Match` and `Include`, resolved to HostName, Port,
 * User, ProxyJump, ForwardAgent, IdentityAgent, SetEnv and forwards as
 * tunnel specs; `--ssh-option` and `-u` reach `ssh -G` too.
 */

import assert from "node:assert/strict";
import {
  forwardSpec,
  parseSshG,
  resolveWithSsh,
  withSshOptions,
} from "../../src/client/ssh.ts";
import { configuredForwarding } from "../../src/client/tunnels.ts";

/** Writes a config tree in a temp dir; returns its `ssh -F` command. */
async function configTree(): Promise<{ ssh: string[]; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "et-sshg-" });
  await Deno.mkdir(`${dir}/conf.d`);
  await Deno.writeTextFile(
    `${dir}/conf.d/work.conf`,
    [
      "Host work",
      "  HostName 10.9.8.7",
      "  User builder",
      "  Port 2200",
      '  SetEnv WORK_ENV=included "SPACED=a b c"',
      "  LocalForward 8080 localhost:80",
      "  LocalForward [::1]:9090 [2001:db8::2]:90",
      "  LocalForward /tmp/et-l.sock /run/app.sock",
      "  LocalForward 127.0.0.1:7070 /run/r.sock",
      "  RemoteForward 5000 localhost:5001",
      "  RemoteForward /tmp/et-r.sock 10.0.0.1:53",
      "  RemoteForward 6000", // a SOCKS forward: no tunnel for it
      "  ProxyJump hop@jump1:2222,jump2",
      "  ForwardAgent yes",
      "  IdentityAgent /tmp/et-agent.sock",
      "",
    ].join("\n"),
  );
  await Deno.writeTextFile(
    `${dir}/config`,
    [
      `Include ${dir}/conf.d/*.conf`,
      // Match runs on the final pass: HostName is known by then.
      "Match host 10.9.8.7 user builder",
      "  SetEnv MATCHED=yes",
      "Host plain",
      "  HostName plain.example",
      "Host *",
      "  SetEnv FALLBACK=1",
      "  StrictHostKeyChecking no",
      "",
    ].join("\n"),
  );
  return { ssh: ["ssh", "-F", `${dir}/config`], dir };
}

Deno.test("ssh -G: an alias from an Include, with Match, read whole", async () => {
  const { ssh, dir } = await configTree();
  try {
    const config = await resolveWithSsh(ssh, "work");
    assert.equal(config.hostname, "10.9.8.7");
    assert.equal(config.user, "builder");
    assert.equal(config.port, 2200);
    assert.equal(config.proxyJump, "hop@jump1:2222,jump2");
    assert.equal(config.forwardAgent, true);
    assert.equal(config.identityAgent, "/tmp/et-agent.sock");
    // ssh keeps the first SetEnv it meets: the Include's, not Match's.
    assert.deepEqual(config.setEnv, { WORK_ENV: "included", SPACED: "a b c" });
    assert.deepEqual(config.localForwards, [
      "8080:localhost:80",
      "[::1]:9090:[2001:db8::2]:90",
      "/tmp/et-l.sock:/run/app.sock",
      "127.0.0.1:7070:/run/r.sock",
    ]);
    assert.deepEqual(config.remoteForwards, [
      "5000:localhost:5001",
      "/tmp/et-r.sock:10.0.0.1:53",
    ]);
    assert.equal(config.skipped.length, 1);
    assert.match(config.skipped[0], /^remoteforward 6000 \[socks\]:0: /);

    const plain = await resolveWithSsh(ssh, "someone@plain");
    assert.equal(plain.hostname, "plain.example");
    assert.equal(plain.user, "someone"); // -u / user@ reach ssh -G
    assert.equal(plain.port, 22);
    assert.deepEqual(plain.setEnv, { FALLBACK: "1" });
    assert.deepEqual(plain.localForwards, []);
    assert.equal(plain.proxyJump, null);
    assert.equal(plain.forwardAgent, false);

    // Match matched on the final pass for a host with no SetEnv before it.
    const matched = await resolveWithSsh(ssh, "builder@10.9.8.7");
    assert.deepEqual(matched.setEnv, { MATCHED: "yes" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ssh -G: --ssh-option reaches it (and wins, as on ssh's command line)", async () => {
  const { ssh, dir } = await configTree();
  try {
    const config = await resolveWithSsh(
      withSshOptions(ssh, [
        "SetEnv=FROM_OPTION=1",
        "User=optuser",
        "Port 2345",
      ]),
      "plain",
    );
    assert.deepEqual(config.setEnv, { FROM_OPTION: "1" });
    assert.equal(config.user, "optuser");
    assert.equal(config.port, 2345);
    assert.deepEqual(withSshOptions(["ssh", "-q"], ["A=1", "B 2"]), [
      "ssh",
      "-q",
      "-o",
      "A=1",
      "-o",
      "B 2",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ssh -G: forwards convert to ssh-style tunnel specs", () => {
  const cases: [string, string | null][] = [
    ["8080 [localhost]:80", "8080:localhost:80"],
    ["[::1]:9090 [::2]:90", "[::1]:9090:[::2]:90"],
    ["[127.0.0.1]:7070 /tmp/r.sock", "127.0.0.1:7070:/tmp/r.sock"],
    ["/tmp/a.sock /tmp/b.sock", "/tmp/a.sock:/tmp/b.sock"],
    ["/tmp/a.sock [example.com]:22", "/tmp/a.sock:example.com:22"],
    ["[*]:8080 [localhost]:80", "*:8080:localhost:80"],
    ["6000 [socks]:0", null], // dynamic (SOCKS) forward
    ["/tmp/a:b.sock /tmp/c.sock", null], // a colon in a path
    ["8080", null],
    ["8080 80", null], // a connect end needs a host
    ["x80 [h]:80", null],
  ];
  for (const [line, spec] of cases) assert.equal(forwardSpec(line), spec, line);
});

Deno.test("ssh -G: SetEnv names and values are checked, the rest is skipped with a reason", () => {
  const text = [
    "hostname h",
    "setenv GOOD=1",
    "setenv EMPTY=",
    "setenv _under_9=x",
    "setenv 9BAD=1",
    "setenv BAD-NAME=1",
    `setenv LONG=${"v".repeat(5000)}`,
    "",
  ].join("\n");
  const config = parseSshG(text, "h");
  assert.deepEqual(config.setEnv, { GOOD: "1", EMPTY: "", _under_9: "x" });
  assert.deepEqual(config.skipped, [
    "setenv 9BAD: not a variable name",
    "setenv BAD-NAME: not a variable name",
    "setenv LONG: value longer than 4096",
  ]);
  assert.throws(
    () => parseSshG("user x\n", "h"),
    /^Error: ssh -G h named no hostname$/,
  );
});

Deno.test("ssh -G: ForwardAgent naming a socket (a path or $VAR) forwards that socket, before IdentityAgent", async () => {
  const dir = await Deno.makeTempDir({ prefix: "et-sshg-agent-" });
  const env = "ET_TEST_AGENT_SOCK";
  try {
    await Deno.writeTextFile(
      `${dir}/config`,
      [
        "Host bypath",
        `  ForwardAgent ${dir}/fwd.sock`,
        "  IdentityAgent /tmp/et-identity.sock",
        "Host byvar",
        `  ForwardAgent $${env}`,
        "Host byyes",
        "  ForwardAgent yes",
        "  IdentityAgent /tmp/et-identity.sock",
        "Host off",
        "  ForwardAgent no",
        "",
      ].join("\n"),
    );
    // ssh -G warns on stderr when the socket does not exist; it must.
    await Deno.writeTextFile(`${dir}/fwd.sock`, "");
    Deno.env.set(env, `${dir}/var.sock`);
    const ssh = ["ssh", "-F", `${dir}/config`];
    const agentOf = async (host: string) =>
      configuredForwarding(await resolveWithSsh(ssh, host)).agentSocket;
    assert.equal(await agentOf("bypath"), `${dir}/fwd.sock`);
    assert.equal(await agentOf("byvar"), `${dir}/var.sock`);
    assert.equal(await agentOf("byyes"), "/tmp/et-identity.sock");
    assert.equal(await agentOf("off"), undefined);
  } finally {
    Deno.env.delete(env);
    await Deno.remove(dir, { recursive: true });
  }
});
