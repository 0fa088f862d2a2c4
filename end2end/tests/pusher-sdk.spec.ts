// The embedded Pusher server against the official SDKs: pusher-js (Node build) as the client and the
// `pusher` server SDK for signing and the HTTP API. Node side only, no browser page.
// Run alone with `npx playwright test --project=sdk` (the webServer starts the release server with
// PUSHER_APP_ID/KEY/SECRET, which selects the embedded server with these credentials).
import { test, expect } from '@playwright/test';
import Pusher from 'pusher-js';
import type { Channel, Members, PresenceChannel } from 'pusher-js';
import PusherServer from 'pusher';

const port = Number(process.env.E2E_PORT ?? 3456);
const appId = process.env.PUSHER_APP_ID ?? 'banter-e2e';
const key = process.env.PUSHER_APP_KEY ?? 'banter-e2e-key';
const secret = process.env.PUSHER_APP_SECRET ?? 'banter-e2e-secret';

const api = new PusherServer({ appId, key, secret, host: '127.0.0.1', port: String(port), useTLS: false });

type Member = { user_id: string; user_info?: Record<string, unknown> };

let counter = 0;
/** A channel name no other test (or parallel worker) uses. */
function unique(prefix: string): string {
  counter += 1;
  return `${prefix}${Date.now().toString(36)}.${process.pid}.${counter}`;
}

const clients: Pusher[] = [];
test.afterEach(() => {
  for (const client of clients.splice(0)) client.disconnect();
});

/** A pusher-js client whose auth endpoint is the server SDK's `authorizeChannel`, as an app's would be. */
function client(member?: Member, sign: typeof api.authorizeChannel = api.authorizeChannel.bind(api)): Pusher {
  const pusher = new Pusher(key, {
    cluster: 'embedded', // required by pusher-js 8; wsHost takes precedence
    wsHost: '127.0.0.1',
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) => {
        try {
          const data = channelName.startsWith('presence-') ? member : undefined;
          callback(null, sign(socketId, channelName, data as PusherServer.PresenceChannelData));
        } catch (error) {
          callback(error as Error, null);
        }
      },
    },
  });
  clients.push(pusher);
  return pusher;
}

function connected(pusher: Pusher): Promise<string> {
  return new Promise((resolve, reject) => {
    if (pusher.connection.state === 'connected') return resolve(pusher.connection.socket_id);
    pusher.connection.bind('connected', () => resolve(pusher.connection.socket_id));
    pusher.connection.bind('failed', () => reject(new Error('connection failed')));
    pusher.connection.bind('unavailable', () => reject(new Error('server unavailable')));
  });
}

/** Subscribes and resolves with what `pusher:subscription_succeeded` passes (members on presence channels). */
function subscribe<T = unknown>(pusher: Pusher, name: string): Promise<{ channel: Channel; data: T }> {
  const channel = pusher.subscribe(name);
  return new Promise((resolve, reject) => {
    channel.bind('pusher:subscription_succeeded', (data: T) => resolve({ channel, data }));
    channel.bind('pusher:subscription_error', (error: unknown) => reject(new Error(JSON.stringify(error))));
  });
}

function subscriptionError(pusher: Pusher, name: string): Promise<{ type: string; status: number }> {
  const channel = pusher.subscribe(name);
  return new Promise((resolve, reject) => {
    channel.bind('pusher:subscription_succeeded', () => reject(new Error('subscribed with a forged signature')));
    channel.bind('pusher:subscription_error', resolve);
  });
}

function next<T = unknown>(channel: Channel, event: string): Promise<T> {
  return new Promise((resolve) => {
    const handler = (data: T) => {
      channel.unbind(event, handler);
      resolve(data);
    };
    channel.bind(event, handler);
  });
}

test('pusher-js connects and gets a socket id', async () => {
  const socketId = await connected(client());
  expect(socketId).toMatch(/^\d+\.\d+$/);
  expect(await connected(client())).not.toBe(socketId);
});

test('private channels accept SDK-signed auth and refuse a forged one', async () => {
  const name = unique('private-sdk.');
  const pusher = client();
  await connected(pusher);
  await subscribe(pusher, name);

  const forger = new PusherServer({ appId, key, secret: 'guessed-secret', host: '127.0.0.1', port: String(port) });
  const impostor = client(undefined, forger.authorizeChannel.bind(forger));
  await connected(impostor);
  const error = await subscriptionError(impostor, name);
  expect(error).toMatchObject({ type: 'AuthError', status: 401 });
});

test('trigger reaches pusher-js with the exact data', async () => {
  const name = unique('private-sdk.');
  const pusher = client();
  await connected(pusher);
  const { channel } = await subscribe(pusher, name);
  const data = { text: 'héllo "world" ✓', n: 42, nested: { list: [1, null, true] } };
  const received = next(channel, 'message-sent');
  await api.trigger(name, 'message-sent', data);
  expect(await received).toEqual(data);
});

test('trigger with socket_id skips that connection', async () => {
  const name = unique('sdk-public.');
  const [sender, other] = [client(), client()];
  const senderId = await connected(sender);
  await connected(other);
  const { channel: senderChannel } = await subscribe(sender, name);
  const { channel: otherChannel } = await subscribe(other, name);
  const seenBySender: string[] = [];
  senderChannel.bind_global((event: string) => seenBySender.push(event));

  const otherGotIt = next(otherChannel, 'edited');
  await api.trigger(name, 'edited', { id: 1 }, { socket_id: senderId });
  expect(await otherGotIt).toEqual({ id: 1 });
  // Frames arrive in order: once the sender has the next event, it would also have had the first.
  const senderGotNext = next(senderChannel, 'deleted');
  await api.trigger(name, 'deleted', { id: 1 });
  await senderGotNext;
  expect(seenBySender).not.toContain('edited');
});

test('presence channels list members once and announce joins and leaves', async () => {
  const name = unique('presence-sdk.');
  const ann = client({ user_id: '1', user_info: { name: 'Ann' } });
  const annOtherTab = client({ user_id: '1', user_info: { name: 'Ann' } });
  const bea = client({ user_id: '2', user_info: { name: 'Bea' } });
  await Promise.all([connected(ann), connected(annOtherTab), connected(bea)]);

  const { channel, data: annMembers } = await subscribe<Members>(ann, name);
  expect(annMembers.count).toBe(1);
  expect(annMembers.me).toMatchObject({ id: '1', info: { name: 'Ann' } });
  const added: string[] = [];
  channel.bind('pusher:member_added', (member: { id: string }) => added.push(member.id));

  const { data: tabMembers } = await subscribe<Members>(annOtherTab, name);
  expect(tabMembers.count).toBe(1);

  const beaAdded = next<{ id: string; info: unknown }>(channel, 'pusher:member_added');
  const { data: beaMembers } = await subscribe<Members>(bea, name);
  expect(beaMembers.count).toBe(2);
  expect(await beaAdded).toEqual({ id: '2', info: { name: 'Bea' } });
  expect(added).toEqual(['2']); // Ann's second tab was not announced
  expect((channel as PresenceChannel).members.count).toBe(2);

  const beaRemoved = next<{ id: string }>(channel, 'pusher:member_removed');
  bea.disconnect();
  expect((await beaRemoved).id).toBe('2');
  expect((channel as PresenceChannel).members.count).toBe(1);
});

test('client events pass between two pusher-js clients and are not echoed', async () => {
  const name = unique('private-sdk-chat.');
  const [ann, bea] = [client(), client()];
  await Promise.all([connected(ann), connected(bea)]);
  const { channel: annChannel } = await subscribe(ann, name);
  const { channel: beaChannel } = await subscribe(bea, name);
  const echoes: unknown[] = [];
  annChannel.bind('client-typing', (data: unknown) => echoes.push(data));

  const beaGotIt = next(beaChannel, 'client-typing');
  expect(annChannel.trigger('client-typing', { typing: true })).toBe(true);
  expect(await beaGotIt).toEqual({ typing: true });
  // Bea answers after receiving; any echo to Ann would have been queued before this answer.
  const annGotAnswer = next(annChannel, 'client-seen');
  beaChannel.trigger('client-seen', { seen: true });
  expect(await annGotAnswer).toEqual({ seen: true });
  expect(echoes).toEqual([]);
});

test('the server SDK reads channels, channel info and users', async () => {
  const prefix = unique('presence-sdk-info.');
  const name = `${prefix}room`;
  const [ann, bea] = [client({ user_id: '1' }), client({ user_id: '2' })];
  await Promise.all([connected(ann), connected(bea)]);
  await subscribe(ann, name);
  await subscribe(bea, name);

  const list = await api.get({ path: '/channels', params: { filter_by_prefix: prefix, info: 'user_count' } });
  expect(list.status).toBe(200);
  expect(await list.json()).toEqual({ channels: { [name]: { user_count: 2 } } });

  const info = await api.get({ path: `/channels/${name}`, params: { info: 'subscription_count,user_count' } });
  expect(await info.json()).toEqual({ occupied: true, subscription_count: 2, user_count: 2 });

  const users = await api.get({ path: `/channels/${name}/users` });
  expect(await users.json()).toEqual({ users: [{ id: '1' }, { id: '2' }] });

  const empty = await api.get({ path: `/channels/${unique('sdk-nobody.')}` });
  expect(await empty.json()).toEqual({ occupied: false });
});
