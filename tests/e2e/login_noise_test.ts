/**
 * Login scripts that print to stdout and stderr (motd-style noise) must not
 * break the bootstrap, and the session runs as the ssh user, not as us.
 */
import assert from "node:assert/strict";
import { withSession } from "./_client.ts";
import { E2E_TEST } from "./_world.ts";

const USER = "etnoise";

async function sh(command: string): Promise<number> {
  const output = await new Deno.Command("sh", { args: ["-c", command] })
    .output();
  return output.code;
}

async function ensureNoisyUser(): Promise<string> {
  if ((await sh(`id -u ${USER} >/dev/null 2>&1`)) !== 0) {
    assert.equal(await sh(`useradd -m -s /bin/bash ${USER}`), 0, "useradd");
  }
  // A new account is locked ("!"), which sshd without PAM refuses even for
  // key logins; "*" allows keys and still no password.
  assert.equal(await sh(`usermod -p '*' ${USER}`), 0, "usermod");
  const home = `/home/${USER}`;
  const noise = [
    'echo "bashrc noise on stdout ET_TERMINAL_READ"',
    'echo "bashrc noise on stderr" >&2',
    "printf 'no newline at the end'",
  ].join("\n") + "\n";
  await Deno.writeTextFile(`${home}/.bashrc`, noise);
  await Deno.writeTextFile(
    `${home}/.profile`,
    'echo "Welcome to the noisy host (motd)"\n. "$HOME/.bashrc"\n',
  );
  await sh(`chown ${USER}: ${home}/.bashrc ${home}/.profile`);
  return home;
}

Deno.test({
  ...E2E_TEST,
  name:
    "noisy login scripts do not break the bootstrap; the shell runs as the ssh user",
  ignore: Deno.uid() !== 0, // creating a user needs root (CI runs as root)
  async fn() {
    await ensureNoisyUser();
    await withSession(
      // The line below is the whole session: it ends the shell.
      { user: USER, waitForShell: false, commandRcFiles: true },
      async ({ client }) => {
        await client.type("echo who=$(whoami) home=$HOME term=$TERM; exit\n");
        const code = await client.exit(90_000);
        assert.equal(code, 0, `stderr: ${client.stderr}`);
        assert.match(
          client.stdout,
          new RegExp(`who=${USER} home=/home/${USER} term=\\S+`),
        );
        // The login shell's own noise is part of the session, as with ssh.
        assert.match(client.stdout, /Welcome to the noisy host/);
      },
    );
  },
});
