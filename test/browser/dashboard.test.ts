// The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core. A 3-member cluster
// with metrics ports; the page is loaded from a follower; the leader is SIGKILLed and the page must show a new
// leader and the old one down within FAILOVER_BOUND_MS (polling the DOM). Then the old leader comes back, the
// page's own member is killed, and the page must go on from another member's /cluster. A screenshot of the
// failover is saved under dist/ (its path printed).
// Ports 26301-26303 (peers), 26401-26403 (clients), 26501-26503 (metrics).
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { REPO_ROOT } from '../../cluster/serve-process.js';
import { startTestCluster } from '../integration/helpers.js';
import type { TestCluster } from '../integration/helpers.js';
import { describeWithSystem } from '../system-deps.js';

const BASE_PORT = 26300;
const BASE_METRICS_PORT = 26500;
/** A failover here takes well under a second (fast ticks); the page polls once a second. Generous for CI. */
const FAILOVER_BOUND_MS = 15_000;
export const SCREENSHOT = join(REPO_ROOT, 'dist', 'dashboard-failover.png');

let tc: TestCluster | undefined;
let browser: Browser | undefined;
afterEach(async () => {
  await browser?.close();
  browser = undefined;
  await tc?.close();
  tc = undefined;
});

function chromiumPath(): string {
  return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
}

/**
 * Polls the page until the JavaScript expression `check` (evaluated in the page: the test's TypeScript has no
 * DOM types) is true; fails naming `what` and the page's text. Returns how long it took.
 */
async function until(page: Page, what: string, check: string, timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    if ((await page.evaluate(check)) === true) return Date.now() - started;
    if (Date.now() - started > timeoutMs) {
      const text = await page.evaluate('document.body.innerText');
      throw new Error(`page did not show ${what} within ${timeoutMs} ms; it shows:\n${String(text)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

describeWithSystem(['chromium'], 'dashboard in headless chromium', () => {
  it('shows the new leader after the leader is killed, and keeps going when its own member dies', async () => {
    tc = await startTestCluster({ nodes: 3, basePort: BASE_PORT, baseMetricsPort: BASE_METRICS_PORT });
    const { cluster, client } = tc;
    const leader = await tc.leader();
    const follower = cluster.ids().find((id) => id !== leader) ?? 0;
    for (let i = 0; i < 20; i++) await client.put(`b${i}`, `v${i}`);

    browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${cluster.metricsUrl(follower)}/`);
    await until(page, `member ${leader} as leader`, `(() => { return document.getElementById('leader').dataset.leader === '${leader}' && document.querySelectorAll('#members tbody tr[data-up="true"]').length === 3 })()`, FAILOVER_BOUND_MS);
    expect(await page.locator('#progress .bar').count()).toBe(2); // the leader's two followers

    cluster.kill(leader);
    const shownMs = await until(
      page,
      `a new leader, and member ${leader} down`,
      `(() => { const l = document.getElementById('leader').dataset.leader; const old = document.querySelector('#members tbody tr[data-member-id="${leader}"]'); return l !== '0' && l !== '${leader}' && old !== null && old.dataset.up === 'false' })()`,
      FAILOVER_BOUND_MS,
    );
    const newLeader = Number(await page.locator('#leader').getAttribute('data-leader'));
    expect(newLeader).not.toBe(leader);
    expect(await tc.leader({ exclude: [leader] })).toBe(newLeader);
    await until(page, 'the failover in the timeline', `[...document.querySelectorAll('#timeline li[data-type="leader"]')].some((li) => li.textContent.includes('new leader'))`, FAILOVER_BOUND_MS);
    mkdirSync(join(REPO_ROOT, 'dist'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`dashboard: new leader ${newLeader} shown ${shownMs} ms after kill -9 of leader ${leader}; screenshot ${SCREENSHOT}`);

    // The old leader returns; then the member the page came from dies: the page moves on to another one.
    cluster.start(leader);
    await until(page, `member ${leader} up again`, `(() => { const r = document.querySelector('#members tbody tr[data-member-id="${leader}"]'); return r !== null && r.dataset.up === 'true' })()`, FAILOVER_BOUND_MS);
    cluster.kill(follower);
    await until(page, `a view from a member other than ${follower}`, `(() => { const s = document.getElementById('served-by').textContent; return s !== '${follower}' && s !== '?' && document.getElementById('source-note').textContent !== '' })()`, FAILOVER_BOUND_MS);
    await until(page, `member ${follower} down`, `(() => { const r = document.querySelector('#members tbody tr[data-member-id="${follower}"]'); return r !== null && r.dataset.up === 'false' })()`, FAILOVER_BOUND_MS);
    expect(pageErrors).toEqual([]);
  });
});
