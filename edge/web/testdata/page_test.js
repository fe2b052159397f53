'use strict';
// Drives the page's script (path in argv[2]) against a scripted fake server
// on a fake clock. Run by TestPageScript; prints what failed and exits 1.
const fs = require('node:fs');
const { newBrowser, memoryStorage, fakeClock } = require('./browser.js');

const script = fs.readFileSync(process.argv[2], 'utf8');
let failed = 0;
function check(ok, what, got) {
  if (!ok) { failed++; console.error(`FAIL: ${what}; got ${JSON.stringify(got)}`); }
}
const tick = () => new Promise((r) => setImmediate(r)); // lets fetch promises settle

// FakeWS records what the page sends; the test plays the server.
const sockets = [];
class FakeWS {
  constructor(url, protocol) { Object.assign(this, { url, protocol, sent: [], closed: false }); sockets.push(this); }
  send(data) { this.sent.push(JSON.parse(data)); }
  close() { this.closed = true; }
  open() { this.onopen(); }
  recv(f) { this.onmessage({ data: JSON.stringify(f) }); }
  drop(code = 1006) { this.onclose({ code }); }
  last() { return this.sent[this.sent.length - 1]; }
}
const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');
const msg = (seq, from, to, text) => ({
  msgId: 'm' + seq, seq: String(seq), to: { type: 'CONVERSATION_TYPE_USER', id: to }, fromUser: from,
  fromDevice: from + '-phone', clientMsgId: 'c' + seq, contentType: 'CONTENT_TYPE_TEXT', body: b64(text), createdAtMs: '1700000000000',
});
const fetch = async (url) => ({ ok: true, json: async () => ({ token: 'T-' + new URL(url, 'http://x').searchParams.get('user') }) });

async function main() {
  const clock = fakeClock(), storage = memoryStorage();
  const open = () => newBrowser({ script, host: 'chat.test:7480', fetch, WebSocket: FakeWS, storage, clock });
  let b = open();

  // UTF-8 bodies survive the base64 round trip.
  for (const s of ['', 'plain', 'héllo, 世界 👋', '€']) {
    check(b.run(`decodeText(encodeText(${JSON.stringify(s)}))`) === s, `round trip of ${s}`, b.run(`decodeText(encodeText(${JSON.stringify(s)}))`));
    check(b.run(`encodeText(${JSON.stringify(s)})`) === b64(s), `encodeText(${s}) matches Buffer base64`, b.run(`encodeText(${JSON.stringify(s)})`));
  }

  // Choosing a user picks a device id and fetches a dev token.
  b.el('uid').value = 'alice'; b.el('uid').dispatch('change'); b.el('peer').value = 'bob';
  await tick();
  const device = b.el('device').value;
  check(/^web-[0-9a-f]{8}$/.test(device), 'device id', device);
  check(b.el('token').value === 'T-alice', 'dev token filled in', b.el('token').value);

  // Connect and sign in.
  b.el('connect').dispatch('click'); await tick();
  let ws = sockets.at(-1);
  check(ws && ws.url === 'ws://chat.test:7480/ws' && ws.protocol === 'parley.json', 'socket url and subprotocol', ws && [ws.url, ws.protocol]);
  ws.open();
  const si = ws.last();
  check(si.signIn && si.signIn.token === 'T-alice' && si.signIn.deviceId === device && si.id === '1', 'SignIn frame', si);

  // SignInOK with maxSeq 2: sync from 0, one page.
  ws.recv({ id: si.id, signInOk: { userId: 'alice', deviceId: device, maxSeq: '2', heartbeatMs: 20000 } });
  let f = ws.last();
  check(f.sync && f.sync.afterSeq === '0', 'Sync after sign-in', f);
  ws.recv({ id: f.id, syncBatch: { messages: [msg(1, 'bob', 'alice', 'hi ☃'), msg(2, 'carol', 'alice', 'psst')], maxSeq: '2' } });
  let shown = b.bubbles();
  check(shown.length === 2 && shown[0].text === 'hi ☃' && shown[0].cls === 'msg', 'peer message shown', shown);
  check(shown[1].cls.includes('aside') && shown[1].meta.includes('from carol'), 'other sender labeled', shown[1]);
  check(b.run('S.max') === 2 && ws.sent.length === 2, 'no extra Sync when caught up', ws.sent);

  // Push: seq max+1 appends; a gap Syncs from max.
  ws.recv({ push: { message: msg(3, 'bob', 'alice', 'three') } });
  check(b.run('S.max') === 3 && ws.sent.length === 2, 'push of max+1 appended without Sync', ws.sent.length);
  ws.recv({ push: { message: msg(5, 'bob', 'alice', 'five') } });
  f = ws.last();
  check(f.sync && f.sync.afterSeq === '3', 'gap Syncs from max', f);
  ws.recv({ push: { message: msg(6, 'bob', 'alice', 'six') } }); // while syncing: no second Sync in flight
  check(ws.last() === f, 'one Sync in flight', ws.last());
  ws.recv({ id: f.id, syncBatch: { messages: [msg(4, 'bob', 'alice', 'four'), msg(5, 'bob', 'alice', 'five')], maxSeq: '5' } });
  check(b.run('S.max') === 6, 'gap filled', b.run('S.max'));
  f = ws.last(); // the push that arrived meanwhile asked for one more Sync
  check(f.sync && f.sync.afterSeq === '6', 'Sync again after a gap seen while syncing', f);
  ws.recv({ id: f.id, syncBatch: { maxSeq: '6' } });

  // Send: timeout resends with the same clientMsgId; a temporary error retries.
  b.el('text').value = 'ça va? 🙂'; b.el('compose').dispatch('submit');
  const s1 = ws.last();
  check(s1.send && s1.send.to.id === 'bob' && s1.send.to.type === 'CONVERSATION_TYPE_USER' && s1.send.contentType === 'CONTENT_TYPE_TEXT', 'Send frame', s1);
  check(/^[0-9a-f]{32}$/.test(s1.send.clientMsgId) && s1.send.body === b64('ça va? 🙂'), 'Send clientMsgId and body', s1.send);
  check(b.bubbles().at(-1).cls.includes('pending'), 'pending bubble', b.bubbles().at(-1));
  clock.advance(10000);
  const s2 = ws.sent.find((x) => x.send && x.id !== s1.id);
  check(s2 && s2.send.clientMsgId === s1.send.clientMsgId, 'resend after timeout keeps clientMsgId', s2);
  ws.recv({ id: s2.id, error: { code: 'ERROR_CODE_UNAVAILABLE', message: 'retry', temporary: true, clientMsgId: s1.send.clientMsgId } });
  clock.advance(5000);
  const s3 = ws.sent.filter((x) => x.send).at(-1);
  check(s3 && s3.id !== s2.id && s3.send.clientMsgId === s1.send.clientMsgId, 'retry after temporary error', s3);
  ws.recv({ id: s3.id, sendAck: { msgId: 'x7', seq: '7', createdAtMs: '1700000000000', clientMsgId: s1.send.clientMsgId } });
  shown = b.bubbles();
  check(b.run('S.max') === 7 && b.run('outbox.size') === 0, 'SendAck settles the send at its seq', b.run('S.max'));
  check(shown.at(-1).cls === 'msg mine' && shown.at(-1).text === 'ça va? 🙂' && shown.at(-1).meta.startsWith('#7'), 'sent bubble', shown.at(-1));

  // A permanent error fails the send, visibly.
  b.el('text').value = 'too big'; b.el('compose').dispatch('submit');
  const big = ws.last();
  ws.recv({ id: big.id, error: { code: 'ERROR_CODE_BODY_TOO_LARGE', message: 'body is too large', clientMsgId: big.send.clientMsgId } });
  check(b.bubbles().at(-1).cls.includes('failed') && b.bubbles().at(-1).meta.includes('BODY_TOO_LARGE'), 'failed bubble', b.bubbles().at(-1));
  b.run('outbox.clear()');

  // Ack and Ping run on their timers.
  ws.sent.length = 0;
  clock.advance(20000);
  check(ws.sent.some((x) => x.ack && x.ack.seq === '7'), 'Ack of max', ws.sent);
  check(ws.sent.some((x) => x.ping), 'Ping every heartbeat', ws.sent);
  check(ws.sent.filter((x) => x.ack).length === 1, 'Ack only when max moved', ws.sent);

  // Server closes with SHUTTING_DOWN: reconnect with backoff, sign in, resync.
  ws.recv({ error: { code: 'ERROR_CODE_SHUTTING_DOWN', message: 'draining' } });
  check(b.el('error').textContent.includes('SHUTTING_DOWN'), 'close reason shown', b.el('error').textContent);
  ws.drop(1000);
  b.el('text').value = 'queued'; b.el('compose').dispatch('submit'); // offline: waits
  check(b.bubbles().at(-1).meta.includes('waiting'), 'queued while offline', b.bubbles().at(-1));
  const n = sockets.length;
  clock.advance(499 / 2); // equal jitter: never before half the first backoff step
  check(sockets.length === n, 'no reconnect before backoff', sockets.length);
  clock.advance(1000);
  check(sockets.length === n + 1, 'reconnected', sockets.length);
  ws = sockets.at(-1); ws.open();
  ws.recv({ id: ws.last().id, signInOk: { maxSeq: '8', heartbeatMs: 20000 } });
  const after = ws.sent.slice(1);
  check(after.some((x) => x.sync && x.sync.afterSeq === '7'), 'resync from max after reconnect', after);
  const q = after.find((x) => x.send);
  check(q && q.send.body === b64('queued'), 'queued send goes out after sign-in', after);
  // Its ack was lost but the Sync brings the entry: the send settles.
  const mine = { ...msg(8, 'alice', 'bob', 'queued'), fromDevice: device, clientMsgId: q.send.clientMsgId };
  ws.recv({ id: after.find((x) => x.sync).id, syncBatch: { messages: [mine], maxSeq: '8' } });
  check(b.run('outbox.size') === 0 && b.run('S.max') === 8, 'synced own entry settles the send', b.run('outbox.size'));

  // REPLACED is final: no reconnect.
  ws.recv({ error: { code: 'ERROR_CODE_REPLACED', message: 'this device signed in on another connection' } });
  ws.drop(1000);
  clock.advance(120000);
  check(sockets.at(-1) === ws && b.el('status').textContent === 'offline', 'no reconnect after REPLACED', b.el('status').textContent);
  check(b.el('error').textContent.includes('REPLACED'), 'REPLACED shown', b.el('error').textContent);

  // A reload keeps the mailbox: history shows at once, and sign-in syncs only
  // past the saved max.
  b = open(); await tick();
  check(b.el('uid').value === 'alice' && b.el('device').value === device && b.bubbles().length === 8, 'reload restores history', b.bubbles().length);
  b.el('connect').dispatch('click'); await tick();
  ws = sockets.at(-1); ws.open();
  ws.recv({ id: ws.last().id, signInOk: { maxSeq: '9', heartbeatMs: 20000 } });
  check(ws.last().sync && ws.last().sync.afterSeq === '8', 'reload syncs from saved max', ws.last());

  // A server whose mailbox is behind the browser (a wiped dev store): start over.
  ws.recv({ error: { code: 'ERROR_CODE_SHUTTING_DOWN' } }); ws.drop(); clock.advance(2000);
  ws = sockets.at(-1); ws.open();
  ws.recv({ id: ws.last().id, signInOk: { maxSeq: '1', heartbeatMs: 20000 } });
  check(ws.last().sync && ws.last().sync.afterSeq === '0' && b.el('error').textContent.includes('starting over'), 'wiped server resyncs from 0', ws.last());

  // A dead connection (no frames for 2 heartbeats + 10s) is closed.
  ws.recv({ id: ws.last().id, syncBatch: { messages: [msg(1, 'bob', 'alice', 'x')], maxSeq: '1' } });
  clock.advance(60000);
  check(ws.closed, 'silent socket closed', ws.closed);

  // A token for someone else: stop, say so.
  ws.recv({ error: { code: 'ERROR_CODE_SHUTTING_DOWN' } }); ws.drop(); clock.advance(2000);
  ws = sockets.at(-1); ws.open();
  ws.recv({ id: ws.last().id, signInOk: { userId: 'mallory', maxSeq: '1', heartbeatMs: 20000 } });
  check(ws.closed && b.el('status').textContent === 'offline' && b.el('error').textContent.includes('mallory'), 'token for another user', b.el('error').textContent);
  clock.advance(120000);
  check(sockets.at(-1) === ws, 'no reconnect after a wrong-user token', sockets.length);

  if (failed) process.exit(1);
  console.log('ok');
}
main().catch((e) => { console.error(e); process.exit(1); });
