// Extra Banter servers for the tests that restart a server or need two of them (an app server
// using another server as its external Pusher server). Each gets a free port and its own database.
import { expect, test } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../..');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The master key of the `encrypted` project's servers (32 bytes, base64), as its webServer has it. */
export const E2E_MASTER_KEY = Buffer.from('banter-e2e-master-key-32-bytes!!').toString('base64');

/** Whether the running test belongs to the `encrypted` project (end-to-end encrypted channels). */
export function encryptedProject(): boolean {
  return test.info().project.name === 'encrypted';
}

/**
 * `encryption`: whether the server gets the master key; by default when the test runs in the
 * `encrypted` project, so that servers a test starts itself are configured like the project's.
 */
export type ServerOptions = { port?: number; dbDir?: string; env?: Record<string, string>; encryption?: boolean };

export class BanterServer {
  private process?: ChildProcess;
  private output = '';

  private constructor(
    readonly port: number,
    readonly dbDir: string,
    private env: Record<string, string>,
  ) {}

  static async start(options: ServerOptions = {}): Promise<BanterServer> {
    const port = options.port ?? (await freePort());
    const dbDir = options.dbDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'banter-e2e-extra-'));
    const key = (options.encryption ?? encryptedProject()) ? { PUSHER_ENCRYPTION_MASTER_KEY_BASE64: E2E_MASTER_KEY } : {};
    const server = new BanterServer(port, dbDir, { ...key, ...(options.env ?? {}) });
    await server.up();
    return server;
  }

  /** Stops, then starts again on the same port and database with `env` changed (a new key, say). */
  async restartWith(env: Record<string, string>): Promise<void> {
    await this.down();
    this.env = { ...this.env, ...env };
    await this.up();
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts (again) on the same port and database, and waits until /healthz answers. */
  async up(): Promise<void> {
    this.output = '';
    this.process = spawn(path.join(root, 'target/release/server'), [], {
      cwd: root,
      env: {
        ...process.env,
        LEPTOS_SITE_ADDR: `127.0.0.1:${this.port}`,
        LEPTOS_SITE_ROOT: 'target/site',
        LEPTOS_OUTPUT_NAME: 'banter',
        DATABASE_URL: `sqlite://${this.dbDir}/banter.sqlite?mode=rwc`,
        RUST_LOG: 'warn',
        LIMIT_SIGN_UPS_PER_ADDRESS: '0',
        PUSHER_PUBLIC_CHANNELS: 'true',
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.process.stdout?.on('data', (d) => (this.output += d));
    this.process.stderr?.on('data', (d) => (this.output += d));
    // Polled until it answers, or the process has died (no point waiting out the timeout then).
    const state = async (): Promise<string> => {
      if (this.process?.exitCode !== null) return 'exited';
      try {
        return (await fetch(`${this.url}/healthz`)).ok ? 'up' : 'starting';
      } catch {
        return 'starting';
      }
    };
    await expect
      .poll(state, { timeout: 30_000, message: `/healthz of the server on ${this.url}` })
      .not.toBe('starting');
    if ((await state()) !== 'up') throw new Error(`server exited: ${this.output}`);
  }

  /** SIGTERM, as a deployment would, and waits for the process to end. */
  async down(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
}

/**
 * An app server publishing to a separate Pusher server (another Banter, as sockudo or soketi would
 * be), both with `credentials`. The Pusher server lists the app's origin, so the app's pages may
 * open its socket, and never has the encryption key: with encryption on it relays ciphertext only.
 */
export async function appWithExternalPusher(
  credentials: Record<'PUSHER_APP_ID' | 'PUSHER_APP_KEY' | 'PUSHER_APP_SECRET', string>,
): Promise<{ app: BanterServer; pusher: BanterServer }> {
  const appPort = await freePort();
  const pusher = await BanterServer.start({
    env: { ...credentials, ALLOWED_ORIGINS: `http://127.0.0.1:${appPort}` },
    encryption: false,
  });
  const app = await BanterServer.start({
    port: appPort,
    env: { ...credentials, PUSHER_HOST: '127.0.0.1', PUSHER_PORT: String(pusher.port), PUSHER_SCHEME: 'http' },
  });
  return { app, pusher };
}
