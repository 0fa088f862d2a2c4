// Files and images: attached by the paperclip or by pasting, each with a progress bar while it
// goes up, sent with the message, and shown live to the other person as a preview (its shape
// reserved) or a file chip that downloads under its own name; without JavaScript, the plain form
// sends an image and the page shows its preview. An axe audit and screenshots.
import { expect, test, type Page } from '@playwright/test';
import * as path from 'node:path';
import { deflateSync } from 'node:zlib';
import { expectAccessible } from './a11y';
import { chunkLine, createGroupByApi, done, live, log, openChat, person, send, sendByApi } from './chat-support';

test.describe.configure({ mode: 'parallel' });

const shot = (name: string) => path.resolve(__dirname, '../screenshots', name);

/** A real PNG, `width` × `height`, a diagonal gradient (made here, so no file is checked in). */
function png(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes: Buffer) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'ascii');
    data.copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) {
      rows.set([(x * 255) / width, (y * 255) / height, 160], row + 1 + x * 3);
    }
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', header), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

const composer = (page: Page) => page.getByLabel('Message', { exact: true });
const tray = (page: Page) => page.getByRole('list', { name: 'Files to send' });

test('files go up with a progress bar, arrive live as a preview and a chip, and download under their name', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'files-a');
  const bob = await person(browser, info, 'files-b');
  await sendByApi(bob, alice, 'send me the photos');
  await openChat(alice, info, bob);
  await openChat(bob, info, alice);
  await live(alice);
  await live(bob);

  // The paperclip opens the file chooser; two files go up, each shown with its progress (held
  // back a moment here, as on a slow link, so the bar is seen).
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => { release = resolve; });
  await alice.page.route('**/api/uploads?*', async (route) => { await held; await route.continue(); });
  const chooser = alice.page.waitForEvent('filechooser');
  await alice.page.getByRole('button', { name: 'Attach files' }).click();
  await (await chooser).setFiles([
    { name: 'sunset.png', mimeType: 'image/png', buffer: png(1200, 600) },
    { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('remember the tripod\n') },
  ]);
  await expect(tray(alice.page).getByRole('listitem')).toHaveCount(2);
  await expect(alice.page.getByRole('progressbar', { name: 'Uploading sunset.png' })).toBeVisible();
  await expect(alice.page.getByRole('button', { name: 'Cancel uploading notes.txt' })).toBeVisible();
  await alice.page.screenshot({ path: shot('files-uploading.png') });
  release();
  await expect(tray(alice.page).locator('[data-state="done"]')).toHaveCount(2);
  await expectAccessible(alice.page, 'composer with files');
  await alice.page.screenshot({ path: shot('files-composer.png') });

  // A third, pasted and then taken out again, goes nowhere.
  await composer(alice.page).focus();
  await alice.page.evaluate(async (bytes) => {
    const data = new DataTransfer();
    data.items.add(new File([new Uint8Array(bytes)], 'pasted.png', { type: 'image/png' }));
    document.getElementById('composer-body')!.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  }, [...png(40, 40)]);
  await expect(tray(alice.page).getByRole('listitem')).toHaveCount(3);
  await expect(tray(alice.page).locator('[data-state="done"]')).toHaveCount(3);
  await alice.page.getByRole('button', { name: 'Remove pasted.png' }).click();
  await expect(tray(alice.page).getByRole('listitem')).toHaveCount(2);

  await composer(alice.page).fill('two from the trip');
  await composer(alice.page).press('Enter');
  await expect(tray(alice.page)).toHaveCount(0);

  // Bob sees it live: the image at its real shape (2:1) before and after it loads, the file as a chip.
  const message = log(bob.page).getByRole('listitem').filter({ hasText: 'two from the trip' });
  const image = message.locator('.attachment-image img');
  await expect(image).toHaveAttribute('width', '400');
  await expect(image).toHaveAttribute('height', '200');
  await expect.poll(() => image.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBe(400);
  const box = await image.boundingBox();
  expect(Math.round(box!.width / box!.height)).toBe(2);
  const chip = message.getByRole('link', { name: /Download notes\.txt/ });
  await expect(chip).toBeVisible();
  await expectAccessible(bob.page, 'conversation with files');
  await bob.page.screenshot({ path: shot('files-conversation-light.png') });
  await bob.page.emulateMedia({ colorScheme: 'dark' });
  await bob.page.screenshot({ path: shot('files-conversation-dark.png') });
  await bob.page.setViewportSize({ width: 390, height: 800 });
  await bob.page.screenshot({ path: shot('files-conversation-mobile.png') });

  // The chip downloads under the original name, with the original bytes.
  const download = bob.page.waitForEvent('download');
  await chip.click();
  const file = await download;
  expect(file.suggestedFilename()).toBe('notes.txt');
  // Survives a reload, and the pasted file that was taken out never went anywhere.
  await bob.page.reload();
  await expect(log(bob.page).getByRole('listitem').filter({ hasText: 'two from the trip' }).locator('.attachment-image img')).toBeVisible();
  await expect(bob.page.getByText('pasted.png')).toHaveCount(0);
  await done(alice, bob);
});

test('in a group, files dropped on the conversation arrive live; images open in a lightbox moved by the arrow keys and closed by Esc', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'drop-a');
  const bob = await person(browser, info, 'drop-b');
  const room = await createGroupByApi(alice, 'Photos', [bob]);
  // The lightbox's code is a chunk of its own, fetched once the conversation shows an image (when
  // the browser is idle), not with the page.
  const wasm: string[] = [];
  const lightboxChunk = () => wasm.filter((path) => path.startsWith('/pkg/split_lightbox.')).length;
  bob.page.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    if (path.startsWith('/pkg/') && path.endsWith('.wasm')) wasm.push(path);
  });
  for (const p of [alice, bob]) {
    await p.page.goto(`/chat/g/${room}`);
    await expect(p.page.locator('.message-scroller')).toHaveAttribute('data-interactive', 'true');
    await live(p);
  }
  expect(lightboxChunk(), 'a conversation without images does not fetch the lightbox').toBe(0);

  // Three files dragged from the desktop and dropped on the conversation go into the composer.
  await alice.page.evaluate(async (files) => {
    const data = new DataTransfer();
    for (const f of files) data.items.add(new File([new Uint8Array(f.bytes)], f.name, { type: f.type }));
    const target = document.querySelector('.message-scroller')!;
    const over = new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true });
    target.dispatchEvent(over);
    if (!over.defaultPrevented) throw new Error('the conversation does not accept dropped files');
    target.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
  }, [
    { name: 'wide.png', type: 'image/png', bytes: [...png(900, 300)] },
    { name: 'tall.png', type: 'image/png', bytes: [...png(200, 500)] },
    { name: 'list.txt', type: 'text/plain', bytes: [...Buffer.from('tent\nstove\n')] },
  ]);
  await expect(tray(alice.page).locator('[data-state="done"]')).toHaveCount(3);
  await composer(alice.page).fill('from the summit');
  await composer(alice.page).press('Enter');

  // Bob sees both images and the chip live; the first image opens by keyboard.
  const message = log(bob.page).getByRole('listitem').filter({ hasText: 'from the summit' });
  await expect(message.locator('.attachment-image img')).toHaveCount(2);
  await expect(message.getByRole('link', { name: /Download list\.txt/ })).toBeVisible();
  await expect.poll(lightboxChunk, "the images brought the lightbox's chunk before any was opened").toBe(1);
  const first = message.locator('.attachment-image').first();
  await first.focus();
  await bob.page.keyboard.press('Enter');
  const lightbox = bob.page.getByRole('dialog', { name: 'wide.png, image 1 of 2' });
  await expect(lightbox).toBeVisible();
  const full = lightbox.locator('img.lightbox-image');
  await expect.poll(() => full.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBe(900);
  await expect(lightbox.getByRole('button', { name: 'Close' })).toBeFocused();
  await expectAccessible(bob.page, 'lightbox');
  await bob.page.screenshot({ path: shot('files-lightbox.png') });

  // The arrows move between the message's images and go around the ends; the file is not one of them.
  await bob.page.keyboard.press('ArrowRight');
  await expect(bob.page.getByRole('dialog', { name: 'tall.png, image 2 of 2' })).toBeVisible();
  await expect.poll(() => bob.page.locator('img.lightbox-image').evaluate((img: HTMLImageElement) => img.complete && img.naturalHeight)).toBe(500);
  await bob.page.keyboard.press('ArrowRight');
  await expect(bob.page.getByRole('dialog', { name: 'wide.png, image 1 of 2' })).toBeVisible();
  await bob.page.keyboard.press('ArrowLeft');
  await expect(bob.page.getByRole('dialog', { name: 'tall.png, image 2 of 2' })).toBeVisible();
  // The buttons do the same, and keep the focus.
  await bob.page.getByRole('button', { name: 'Previous image' }).click();
  await expect(bob.page.getByRole('dialog', { name: 'wide.png, image 1 of 2' })).toBeVisible();
  await expect(bob.page.getByRole('button', { name: 'Previous image' })).toBeFocused();

  // Esc closes it and gives the focus back to the image that opened it.
  await bob.page.keyboard.press('Escape');
  await expect(bob.page.getByRole('dialog')).toHaveCount(0);
  await expect(first).toBeFocused();
  // A click opens it too; a click on the dim area around the picture closes it.
  await message.locator('.attachment-image').nth(1).click();
  await expect(bob.page.getByRole('dialog', { name: 'tall.png, image 2 of 2' })).toBeVisible();
  await bob.page.mouse.click(5, 5);
  await expect(bob.page.getByRole('dialog')).toHaveCount(0);

  // After a reload the files are still there, for both.
  await alice.page.reload();
  await expect(log(alice.page).getByRole('listitem').filter({ hasText: 'from the summit' }).locator('.attachment-image img')).toHaveCount(2);
  await done(alice, bob);
});

test('when a piece of the app cannot be fetched, it says so and Retry brings it; the rest keeps working', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'chunk-a');
  const bob = await person(browser, info, 'chunk-b');
  const upload = await alice.context.request.post('/api/uploads?name=view.png', { data: png(300, 200), headers: { 'content-type': 'image/png' } });
  expect(upload.status(), await upload.text()).toBe(201);
  const { id } = await upload.json();
  await sendByApi(alice, bob, 'the view from here', { 'attachments[]': String(id) });
  // Bob is offline as far as the lightbox's and the emoji picker's chunks go.
  const line = await chunkLine(bob, /\/pkg\/split_(lightbox|emoji_picker)[._]/);
  await openChat(alice, info, bob);
  await openChat(bob, info, alice);
  await live(alice);
  await live(bob);

  const image = log(bob.page).getByRole('listitem').filter({ hasText: 'the view from here' }).locator('.attachment-image');
  await image.click();
  const failed = bob.page.getByRole('alert').filter({ hasText: 'could not reach Banter: the image viewer did not load' });
  await expect(failed).toBeVisible();
  await expect(bob.page.getByRole('dialog')).toHaveCount(0);
  await expectAccessible(bob.page, 'lightbox-failed');
  await bob.page.screenshot({ path: shot('files-lightbox-failed.png') });
  // The app did not stop: a message still goes out.
  await send(bob, 'viewer broke, message did not');
  await expect(log(alice.page).getByText('viewer broke, message did not')).toBeVisible();

  // Back online, on a slow line: Retry shows that it is on its way, then opens the image.
  line.reachable = true;
  line.slow = 1500;
  await failed.getByRole('link', { name: 'Retry' }).click();
  await expect(bob.page.getByRole('status').filter({ hasText: 'Opening the image…' })).toBeVisible();
  await expect(bob.page.getByRole('dialog', { name: 'view.png', exact: true })).toBeVisible();
  await expect(failed).toHaveCount(0);
  await bob.page.keyboard.press('Escape');
  await expect(bob.page.getByRole('dialog')).toHaveCount(0);

  // The emoji picker the same way.
  line.reachable = false;
  await bob.page.getByRole('button', { name: 'Emoji' }).click();
  const pickerFailed = bob.page.getByRole('alert').filter({ hasText: 'could not reach Banter: the emoji picker did not load' });
  await expect(pickerFailed).toBeVisible();
  await expectAccessible(bob.page, 'emoji-picker-failed');
  await bob.page.screenshot({ path: shot('files-emoji-picker-failed.png') });
  line.reachable = true;
  line.slow = 0;
  await pickerFailed.getByRole('link', { name: 'Retry' }).click();
  await expect(bob.page.getByRole('dialog', { name: 'Choose an emoji' }).getByRole('button', { name: /grinning/i }).first()).toBeVisible();
  // The split build's loader (wasm_split's JavaScript) lets a refused fetch's promise reject before
  // it awaits it, which the page reports as an unhandled "Failed to fetch"; that is all it may
  // report (a panic would add "unreachable").
  expect(bob.errors.filter((e) => e !== 'Failed to fetch')).toEqual([]);
  bob.errors.length = 0;
  await done(alice, bob);
});

test('a file over 25 MB is refused before it goes up', { tag: '@js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'big-a');
  const bob = await person(browser, info, 'big-b');
  await sendByApi(bob, alice, 'hi');
  await openChat(alice, info, bob);
  let uploads = 0;
  alice.page.on('request', (r) => { if (r.url().includes('/api/uploads')) uploads++; });
  const chooser = alice.page.waitForEvent('filechooser');
  await alice.page.getByRole('button', { name: 'Attach files' }).click();
  await (await chooser).setFiles({ name: 'huge.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(25_000_001) });
  await expect(alice.page.getByRole('alert')).toContainText('huge.bin is 25.0 MB: a file can be at most 25 MB');
  await expect(tray(alice.page)).toHaveCount(0);
  expect(uploads).toBe(0);
  await done(alice, bob);
});

test('without JavaScript the plain form sends an image and the page shows its preview', { tag: '@no-js-only' }, async ({ browser }, info) => {
  const alice = await person(browser, info, 'plain-a');
  const bob = await person(browser, info, 'plain-b');
  await sendByApi(bob, alice, 'a picture please');
  await openChat(alice, info, bob);
  await alice.page.getByLabel(/Attach files/).setInputFiles({ name: 'plain.png', mimeType: 'image/png', buffer: png(300, 600) });
  await alice.page.getByLabel('Caption (optional)').fill('sent without scripts');
  await alice.page.getByRole('button', { name: 'Send files' }).click();
  await expect(alice.page).toHaveURL(new RegExp(`/chat/${bob.id}$`));
  const message = log(alice.page).getByRole('listitem').filter({ hasText: 'sent without scripts' });
  const image = message.locator('.attachment-image img');
  await expect(image).toHaveAttribute('width', '200');
  await expect(image).toHaveAttribute('height', '400');
  await expect.poll(() => image.evaluate((img: HTMLImageElement) => img.naturalHeight)).toBe(400);
  await expectAccessible(alice.page, 'conversation with a file, no JavaScript');
  await alice.page.screenshot({ path: shot('files-nojs.png') });

  // Bob opens it too; a stranger gets nothing.
  await openChat(bob, info, alice);
  const src = await log(bob.page).locator('.attachment-image img').first().getAttribute('src');
  expect((await bob.context.request.get(src!)).status()).toBe(200);
  const eve = await person(browser, info, 'plain-e');
  expect((await eve.context.request.get(src!)).status()).toBe(404);
  await done(alice, bob, eve);
});
