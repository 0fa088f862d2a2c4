// Playwright drives Debian's Chromium against the release build. scripts/test.sh picks a free
// port (E2E_PORT) and a throw-away database folder (E2E_DB_DIR); the server is started here.
import { defineConfig } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const port = Number(process.env.E2E_PORT ?? 3456);
const dbDir = process.env.E2E_DB_DIR ?? path.join(os.tmpdir(), `banter-e2e-${port}`);
// The `encrypted` project's server: the same app with end-to-end encrypted channels on.
const encryptedPort = Number(process.env.E2E_ENCRYPTED_PORT ?? port + 1);
const encryptedKey = Buffer.from('banter-e2e-master-key-32-bytes!!').toString('base64');
const encryptedDbDir = path.join(dbDir, 'encrypted');
fs.mkdirSync(encryptedDbDir, { recursive: true });

/** The release server on `port` with database folder `dir`, and `extra` settings. */
function server(port: number, dir: string, extra: Record<string, string> = {}) {
  return {
    command: './target/release/server',
    cwd: '..',
    url: `http://127.0.0.1:${port}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe' as const,
    stderr: 'pipe' as const,
    env: {
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: 'target/site',
      LEPTOS_OUTPUT_NAME: 'banter',
      DATABASE_URL: `sqlite://${dir}/banter.sqlite?mode=rwc`,
      UPLOADS_DIR: path.join(dir, 'uploads'),
      RUST_LOG: 'warn',
      // ID/KEY/SECRET without HOST/CLUSTER: the embedded Pusher server, with credentials the sdk tests know.
      PUSHER_APP_ID: 'banter-e2e',
      PUSHER_APP_KEY: 'banter-e2e-key',
      PUSHER_APP_SECRET: 'banter-e2e-secret',
      // The browser tests sign up far more people from 127.0.0.1 than one address may in an hour;
      // the limit itself is tested in server/tests/hardening.rs.
      LIMIT_SIGN_UPS_PER_ADDRESS: '0',
      // The SDK tests use pusher-js on public channels, as any Pusher app may.
      PUSHER_PUBLIC_CHANNELS: 'true',
      ...extra,
    },
  };
}

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  workers: 2,
  retries: 0,
  forbidOnly: true,
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'playwright-report' }]],
  outputDir: 'test-results',
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    },
  },
  projects: [
    { name: 'js', use: { javaScriptEnabled: true }, grepInvert: /@no-js-only/, testIgnore: /(pusher-sdk|encrypted)\.spec\.ts/ },
    { name: 'no-js', use: { javaScriptEnabled: false }, grepInvert: /@js-only/, testIgnore: /(pusher-sdk|encrypted)\.spec\.ts/ },
    // The official Pusher SDKs against the embedded server, from Node (no browser page).
    { name: 'sdk', testMatch: /pusher-sdk\.spec\.ts/ },
    // End-to-end encrypted channels: the realtime scenarios again, and the official SDKs' encryption.
    {
      name: 'encrypted',
      use: { javaScriptEnabled: true, baseURL: `http://127.0.0.1:${encryptedPort}` },
      grepInvert: /@no-js-only/,
      testMatch: /(realtime|encrypted)\.spec\.ts/,
    },
  ],
  webServer: [
    server(port, dbDir),
    server(encryptedPort, encryptedDbDir, { PUSHER_ENCRYPTION_MASTER_KEY_BASE64: encryptedKey }),
  ],
});
