// Three Banter instances behind nginx, on one PostgreSQL database and one Redis
// (scripts/cluster.sh, started by playwright.config.ts in failover mode): nginx's main port sends
// everything to instance 1 while it is up, and its pinned port reaches instance 2 alone. So Alice
// (main port) and Bob (pinned to instance 2) hold their sockets on different instances, and
// stopping instance 1 sends Alice through nginx to another one.
import { expect, test, type Page } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { contactRow, done, live, log, openChat, person, send } from './chat-support';

const clusterDir = process.env.E2E_CLUSTER_DIR ?? '';
const clusterPort = Number(process.env.E2E_CLUSTER_PORT ?? 0);
const shot = (name: string) => path.resolve(__dirname, '../screenshots', name);
const item = (page: Page, text: string) =>
  log(page).getByRole('listitem').filter({ has: page.locator('.body').getByText(text, { exact: true }) });

/** The process id of instance `i`, as scripts/cluster.sh wrote it. */
function instancePid(i: number): number {
  return Number(fs.readFileSync(path.join(clusterDir, `instance-${i}.pid`), 'utf8').trim());
}

test.describe.configure({ mode: 'serial' });

test('two browsers on different instances chat live, and one instance going away loses nothing', async ({ browser }, info) => {
  test.setTimeout(90_000);
  const alice = await person(browser, info, 'cluster-a', undefined, `http://127.0.0.1:${clusterPort}`);
  const bob = await person(browser, info, 'cluster-b', undefined, `http://127.0.0.1:${clusterPort + 12}`);
  let aliceSockets = 0;
  alice.page.on('websocket', () => { aliceSockets += 1; });
  await openChat(bob, info, alice);
  await live(bob);
  await openChat(alice, info, bob);
  await live(alice);

  // Online across instances, and typing.
  await expect(alice.page.getByTestId('peer-status')).toHaveText('online');
  await expect(contactRow(bob.page, alice.name).getByLabel('online')).toBeVisible();
  await bob.page.getByLabel('Message', { exact: true }).pressSequentially('hel');
  await expect(alice.page.locator('.typing')).toHaveText(`${bob.name} is typing…`);

  // Live both ways, with receipts.
  await send(alice, 'across the cluster');
  await expect(item(bob.page, 'across the cluster')).toBeVisible();
  await expect(item(alice.page, 'across the cluster').getByLabel('Read')).toBeVisible();
  await send(bob, 'received on instance 2');
  await expect(item(alice.page, 'received on instance 2')).toBeVisible();
  await alice.page.screenshot({ path: shot('cluster-alice.png') });

  // Instance 1 (Alice's) is stopped: it closes her socket with 4200, she reconnects through
  // nginx to another instance, and what Bob sends meanwhile reaches her exactly once.
  expect(aliceSockets).toBe(1);
  const first = instancePid(1);
  process.kill(first, 'SIGTERM');
  await send(bob, 'sent while Alice moved');
  // Her page opened a second socket (the first was closed, 4200), and instance 1 is gone.
  await expect.poll(() => aliceSockets).toBe(2);
  await expect.poll(() => { try { process.kill(first, 0); return 'running'; } catch { return 'gone'; } }).toBe('gone');
  await expect(item(alice.page, 'sent while Alice moved')).toHaveCount(1);
  await live(alice);
  await send(alice, 'back on another instance');
  await expect(item(bob.page, 'back on another instance')).toHaveCount(1);
  await send(bob, 'and live again');
  await expect(item(alice.page, 'and live again')).toHaveCount(1);
  await expect(alice.page.getByTestId('peer-status')).toHaveText('online');
  expect(await log(alice.page).locator('.message .body').allInnerTexts()).toEqual([
    'across the cluster',
    'received on instance 2',
    'sent while Alice moved',
    'back on another instance',
    'and live again',
  ]);
  await done(alice, bob);
});
