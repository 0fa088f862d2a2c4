// Time to interactive in Chromium, for `banter-bench tti` (bench/src/tti.rs), which seeds the
// conversation, runs this script with one JSON argument and reads one JSON object back on stdout:
//
//   node end2end/tti.mjs '{"url": "...", "cookie": {"name": "...", "value": "..."}, "runs": 5,
//                          "profiles": ["loopback", "fast3g"]}'
//
// Each run is a first visit (a new browser context: empty cache) and then a second visit in the same
// context (the static files come from the cache). For each load it reports, in milliseconds from
// navigation start: the HTML's first and last byte, first contentful paint, DOMContentLoaded, and the moment the page is
// interactive: the WASM app has hydrated it (the browser entry sets <body data-hydrated="true"> as
// soon as hydration is done, every event handler attached) and the composer holds the focus. It also reports
// the bytes received (the resource timing's encoded body sizes, i.e. as they came over the wire).
//
// And the moment the composer first takes input: the server's page has it, focused, before the WASM
// arrives, and what is typed into it then stays through hydration (the app adopts it). The script
// types a letter as soon as a person could (the page has painted and the composer is visible),
// notes when the page received it, and after hydration checks that the letter is still there.
//
// "fast3g" is Chromium DevTools' "Fast 3G" preset: 562.5 ms round trip, 180,000 B/s down and 84,375
// B/s up (1.6 Mbit/s and 750 kbit/s, times 0.9), applied through the DevTools protocol.
import { chromium } from '@playwright/test';

const PROFILES = {
  loopback: null,
  fast3g: { offline: false, latency: 562.5, downloadThroughput: 180_000, uploadThroughput: 84_375 },
};

const config = JSON.parse(process.argv[2] ?? '{}');
if (!config.url || !config.cookie) {
  console.error('usage: node tti.mjs \'{"url": ..., "cookie": {"name": ..., "value": ...}, "runs": N}\'');
  process.exit(2);
}
const runs = config.runs ?? 5;
const profiles = config.profiles ?? ['loopback', 'fast3g'];
const timeout = config.timeoutMs ?? 60_000;

// Runs in the page before any of its scripts: notes when <body data-hydrated> appears.
function watchHydration() {
  const mark = () => {
    if (document.body?.dataset.hydrated === 'true' && window.__interactiveAt === undefined) {
      window.__interactiveAt = performance.now();
      return true;
    }
    return false;
  };
  const observer = new MutationObserver(() => {
    if (mark()) observer.disconnect();
  });
  observer.observe(document, { subtree: true, attributes: true, attributeFilter: ['data-hydrated'] });
  // The first input the composer takes, and whether the app had hydrated by then.
  document.addEventListener(
    'input',
    (event) => {
      if (window.__inputAt === undefined && event.target?.name === 'body') {
        window.__inputAt = performance.now();
        window.__inputBeforeHydration = window.__interactiveAt === undefined;
      }
    },
    true,
  );
}

async function load(page, url) {
  await page.goto(url, { waitUntil: 'commit', timeout });
  const composer = page.locator('textarea[name="body"]');
  // Typed as soon as a person could: once the page has painted (its stylesheet applied) and the
  // composer is visible, whether or not the app has loaded.
  await page.waitForFunction(() => performance.getEntriesByName('first-contentful-paint').length > 0, null, { timeout });
  await composer.waitFor({ state: 'visible', timeout });
  await composer.pressSequentially('h', { timeout });
  await page.waitForFunction(() => window.__interactiveAt !== undefined, null, { timeout, polling: 50 });
  // Interactive means the composer takes input: it holds the focus and what is typed arrives.
  const focused = await composer.evaluate((el) => document.activeElement === el);
  // The early letter is still there (each visit leaves the composer empty: no draft is kept).
  const before = await composer.inputValue();
  const kept = before === 'h';
  await composer.pressSequentially('hi');
  const typed = await composer.inputValue();
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const paint = performance.getEntriesByName('first-contentful-paint')[0];
    const resources = performance.getEntriesByType('resource');
    const wire = resources.reduce((sum, r) => sum + (r.transferSize ?? 0), nav.transferSize ?? 0);
    const wasm = resources
      .filter((r) => r.name.endsWith('.wasm'))
      .reduce((sum, r) => sum + r.encodedBodySize, 0);
    return {
      interactive: window.__interactiveAt,
      input: window.__inputAt,
      inputBeforeHydration: window.__inputBeforeHydration,
      fcp: paint ? paint.startTime : null,
      firstByte: nav.responseStart,
      htmlLoaded: nav.responseEnd,
      domContentLoaded: nav.domContentLoadedEventEnd,
      htmlBytes: nav.encodedBodySize,
      wasmBytes: wasm,
      wireBytes: wire,
      requests: resources.length + 1,
    };
  });
  await composer.fill('');
  return { ...timing, composerFocused: focused, composerTyped: typed === `${before}hi`, inputKept: kept };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-quic',
    // Each new context is a new browser window, and a new window preloads the browser's own
    // address-bar popup (chrome://omnibox-popup.top-chrome, a WebUI renderer of its own): seen in
    // a trace running beside the page's first load and taking the second of this machine's two
    // cores. A person's first visit opens a tab in a window that has long finished doing that.
    '--disable-features=PreloadTopChromeWebUI,WebUIOmniboxPopup,WebUIOmniboxFullPopup,WebUIOmniboxAimPopup',
  ],
});
const version = browser.version();
const results = [];
try {
  const origin = new URL(config.url);
  for (const profile of profiles) {
    if (!(profile in PROFILES)) throw new Error(`unknown network profile ${profile}`);
    for (let run = 0; run < runs; run++) {
      const context = await browser.newContext();
      await context.addCookies([
        { name: config.cookie.name, value: config.cookie.value, domain: origin.hostname, path: '/' },
      ]);
      await context.addInitScript(watchHydration);
      const page = await context.newPage();
      if (PROFILES[profile]) {
        const cdp = await context.newCDPSession(page);
        await cdp.send('Network.enable');
        await cdp.send('Network.emulateNetworkConditions', PROFILES[profile]);
      }
      // TTI_TRACE=file.json records a Chromium performance trace of the first loopback visit.
      const trace = process.env.TTI_TRACE && profile === 'loopback' && run === 0;
      if (trace) await browser.startTracing(page, { path: process.env.TTI_TRACE, screenshots: false });
      const first = await load(page, config.url);
      if (trace) await browser.stopTracing();
      results.push({ profile, visit: 'first', run, ...first });
      const again = await load(page, config.url);
      results.push({ profile, visit: 'repeat', run, ...again });
      await context.close();
    }
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ chromium: version, results }));
