// Accessibility audits with axe-core (WCAG 2.1 A and AA rules) inside the page under test.
//
// axe is evaluated through the DevTools protocol (`page.evaluate`), not added as a <script> tag:
// `page.addScriptTag({ path })` inserts the file as an inline script, which our Content-Security-
// Policy (scripts need the page's nonce) refuses, and with JavaScript disabled a <script> tag never
// runs at all. Evaluation over the protocol is subject to neither, so one way serves both projects
// and the audit sees the page exactly as served (no `bypassCSP`).
import { expect, test, type Page } from '@playwright/test';
import { readFileSync } from 'node:fs';

const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const TIMERS_AS_PROMISE_REACTIONS = `(() => {
  let next = 1;
  const cleared = new Set();
  window.setTimeout = (fn, _ms, ...args) => {
    const id = next++;
    Promise.resolve().then(() => { if (!cleared.delete(id)) fn(...args); });
    return id;
  };
  window.clearTimeout = (id) => { cleared.add(id); };
})()`;
const BLOCKING = new Set(['serious', 'critical']);

type Node = { target: unknown[]; html: string; failureSummary?: string };
type Violation = { id: string; impact: string | null; help: string; helpUrl: string; nodes: Node[] };

/** axe's results for the page as it is now (violations only). */
export async function axeViolations(page: Page): Promise<Violation[]> {
  const loaded = await page.evaluate(() => typeof (window as unknown as { axe?: unknown }).axe === 'object');
  if (!loaded) {
    // With JavaScript disabled the browser runs no timer, queueMicrotask or MutationObserver
    // callback, only promise reactions; axe schedules its work with setTimeout. There (and only
    // there: no page script exists to notice) timers become promise reactions.
    if (test.info().project.use.javaScriptEnabled === false) await page.evaluate(TIMERS_AS_PROMISE_REACTIONS);
    await page.evaluate(AXE_SOURCE);
  }
  return page.evaluate(async (tags) => {
    const axe = (window as unknown as { axe: { run: (ctx: unknown, opts: unknown) => Promise<{ violations: Violation[] }> } }).axe;
    const results = await axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] });
    return results.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({ target: n.target, html: n.html, failureSummary: n.failureSummary })),
    }));
  }, TAGS);
}

function describe(violations: Violation[]): string {
  return violations
    .map((v) => {
      const nodes = v.nodes
        .map((n) => `    - ${JSON.stringify(n.target)}\n      ${n.html}\n      ${(n.failureSummary ?? '').replace(/\n/g, '\n      ')}`)
        .join('\n');
      return `  ${v.id} (${v.impact}): ${v.help} <${v.helpUrl}>\n${nodes}`;
    })
    .join('\n');
}

/**
 * Audits the page and fails on any serious or critical violation, naming the rule, its impact,
 * and the offending elements. Milder findings are attached to the report, not failed on.
 */
export async function expectAccessible(page: Page, name: string) {
  const violations = await axeViolations(page);
  await test.info().attach(`axe ${name}`, { body: JSON.stringify(violations, null, 2), contentType: 'application/json' });
  const milder = violations.filter((v) => !BLOCKING.has(v.impact ?? ''));
  if (milder.length > 0) {
    test.info().annotations.push({ type: 'axe (moderate/minor)', description: `${name}: ${milder.map((v) => `${v.id} (${v.impact})`).join(', ')}` });
  }
  const blocking = violations.filter((v) => BLOCKING.has(v.impact ?? ''));
  expect(blocking.length, `serious or critical accessibility violations on ${name} (${page.url()}):\n${describe(blocking)}`).toBe(0);
}
