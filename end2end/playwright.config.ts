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
// The `cluster` project's three instances behind nginx (scripts/cluster.sh), on PostgreSQL and Redis.
const clusterPort = Number(process.env.E2E_CLUSTER_PORT ?? port + 100);
const clusterDir = process.env.E2E_CLUSTER_DIR ?? path.join(dbDir, 'cluster');
fs.mkdirSync(clusterDir, { recursive: true });
process.env.E2E_CLUSTER_PORT = String(clusterPort);
process.env.E2E_CLUSTER_DIR = clusterDir;

/** What every test server runs with, and `extra` settings. */
function settings(extra: Record<string, string>) {
  return {
    LEPTOS_SITE_ROOT: 'target/site',
    LEPTOS_OUTPUT_NAME: 'banter',
    RUST_LOG: 'warn',
    // ID/KEY/SECRET without HOST/CLUSTER: the embedded Pusher server, with credentials the sdk tests know.
    PUSHER_APP_ID: 'banter-e2e',
    PUSHER_APP_KEY: 'banter-e2e-key',
    PUSHER_APP_SECRET: 'banter-e2e-secret',
    // The browser tests sign up far more people from 127.0.0.1 than one address may in an hour;
    // the limit itself is tested in server/tests/integration/hardening.rs.
    LIMIT_SIGN_UPS_PER_ADDRESS: '0',
    // The SDK tests use pusher-js on public channels, as any Pusher app may.
    PUSHER_PUBLIC_CHANNELS: 'true',
    ...extra,
  };
}

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
    env: settings({
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      DATABASE_URL: `sqlite://${dir}/banter.sqlite?mode=rwc`,
      UPLOADS_DIR: path.join(dir, 'uploads'),
      ...extra,
    }),
  };
}

/** scripts/cluster.sh: three instances behind nginx, everything to instance 1 while it is up. */
function cluster() {
  return {
    command: 'bash scripts/cluster.sh 3',
    cwd: '..',
    url: `http://127.0.0.1:${clusterPort}/healthz`,
    reuseExistingServer: false,
    timeout: 120_000,
    stdout: 'pipe' as const,
    stderr: 'pipe' as const,
    env: settings({
      CLUSTER_PORT: String(clusterPort),
      CLUSTER_BALANCE: 'failover',
      CLUSTER_DIR: clusterDir,
      DATABASE_URL: process.env.E2E_CLUSTER_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/banter_e2e_cluster',
      REDIS_URL: process.env.E2E_REDIS_URL ?? 'redis://127.0.0.1:6379',
      UPLOADS_DIR: path.join(clusterDir, 'uploads'),
    }),
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
    { name: 'js', use: { javaScriptEnabled: true }, grepInvert: /@no-js-only/, testIgnore: /(pusher-sdk|encrypted|cluster)\.spec\.ts/ },
    { name: 'no-js', use: { javaScriptEnabled: false }, grepInvert: /@js-only/, testIgnore: /(pusher-sdk|encrypted|cluster)\.spec\.ts/ },
    // Several instances behind nginx (scripts/cluster.sh), with JavaScript.
    { name: 'cluster', use: { javaScriptEnabled: true, baseURL: `http://127.0.0.1:${clusterPort}` }, testMatch: /cluster\.spec\.ts/ },
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
    cluster(),
  ],
});
