'use strict';
// A minimal browser for the page's inline script: just the DOM, storage and
// globals it uses, in a node:vm context. Used by page_test.js (and usable by
// hand against a real parleyd with node --experimental-websocket).
const vm = require('node:vm');

// Elem is the part of an HTMLElement the page touches.
class Elem {
  constructor(id) {
    Object.assign(this, { id, value: '', textContent: '', className: '', style: {}, children: [], listeners: {} });
    Object.assign(this, { scrollHeight: 0, scrollTop: 0, clientHeight: 0, onclick: null });
  }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  dispatch(type) { for (const fn of this.listeners[type] || []) fn({ preventDefault() {} }); }
  append(...c) { this.children.push(...c); }
  replaceChildren(...c) { this.children = c; }
}

// memoryStorage is a localStorage; share one between browsers to model a reload.
function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), map: m };
}

// fakeClock runs timers only when advanced, like testing/synctest.
function fakeClock() {
  let now = 1700000000000, last = 0;
  const timers = new Map();
  const add = (fn, ms, every) => { timers.set(++last, { at: now + Math.max(0, ms | 0), fn, every }); return last; };
  return {
    now: () => now,
    setTimeout: (fn, ms) => add(fn, ms, 0),
    setInterval: (fn, ms) => add(fn, ms, Math.max(1, ms | 0)),
    clear: (id) => timers.delete(id),
    advance(ms) {
      const end = now + ms;
      for (;;) {
        let id = 0, t = null;
        for (const [i, x] of timers) if (x.at <= end && (!t || x.at < t.at)) [id, t] = [i, x];
        if (!t) break;
        now = t.at;
        if (t.every) t.at += t.every; else timers.delete(id);
        t.fn();
      }
      now = end;
    },
  };
}

// newBrowser loads script as the page would: init() runs against the fake DOM.
function newBrowser({ script, host, fetch, WebSocket, storage = memoryStorage(), clock = null }) {
  const els = {};
  const document = { getElementById: (id) => (els[id] ||= new Elem(id)), createElement: () => new Elem('') };
  const timers = clock
    ? { setTimeout: clock.setTimeout, setInterval: clock.setInterval, clearTimeout: clock.clear, clearInterval: clock.clear }
    : { setTimeout, setInterval, clearTimeout, clearInterval };
  const ctx = vm.createContext({
    document, window: { addEventListener() {} }, localStorage: storage, location: { protocol: 'http:', host },
    fetch, WebSocket, ...timers, TextEncoder, TextDecoder, btoa, atob, crypto, console, __now: clock ? clock.now : Date.now,
  });
  vm.runInContext('Date.now = __now;', ctx);
  vm.runInContext(script, ctx, { filename: 'index.html<script>' });
  return {
    el: (id) => document.getElementById(id),
    run: (code) => vm.runInContext(code, ctx),
    storage,
    // bubbles is the rendered log: [{cls, text, meta}].
    bubbles: () => document.getElementById('log').children.map((b) => ({ cls: b.className, text: b.children[0].textContent, meta: b.children[1].textContent })),
  };
}

module.exports = { newBrowser, memoryStorage, fakeClock };
