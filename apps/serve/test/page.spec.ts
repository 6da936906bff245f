/**
 * The page, in a real headless browser (Debian's chromium driven by playwright-core, which
 * downloads no browser of its own): pick liked, disliked and candidate files, press Rank, see the
 * candidates in the service's order with their scores; a file that is not an image shows the
 * service's error naming it.
 *
 * Needs /usr/bin/chromium (`.ci/run` installs it). In CI a missing browser fails this test; outside
 * CI it is skipped with the reason printed. USERPREF_PAGE_SCREENSHOT=<file.png> saves a screenshot
 * of the ranked page.
 */
import { existsSync, promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { chromium, type BrowserContext } from 'playwright-core';
import type { Idefics2Backbone } from '@userpref/backbone-idefics2';
import type { Ranking } from '@userpref/ranking';
import { createRankServer, type RankServer } from '@userpref/ranking-server';
import { encodedImage, tinyBackbone } from './fixtures';

const CHROMIUM = process.env.USERPREF_CHROMIUM ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available && !process.env.CI) {
  // eslint-disable-next-line no-console
  console.warn(`page test skipped: no browser at ${CHROMIUM} (apt-get install chromium, or set USERPREF_CHROMIUM); in CI this test fails instead`);
}

(available || process.env.CI ? describe : describe.skip)('the ranking page in headless chromium (tiny IDEFICS2)', () => {
  let backbone: Idefics2Backbone;
  let dir: string;
  let server: RankServer;
  let url: string;
  let context: BrowserContext;
  const files: Record<'liked' | 'disliked' | 'candidates', string[]> = { liked: [], disliked: [], candidates: [] };

  beforeAll(async () => {
    if (!available) throw new Error(`no browser at ${CHROMIUM}: .ci/run installs Debian's chromium (apt-get install chromium); set USERPREF_CHROMIUM to use another`);
    const tiny = await tinyBackbone();
    backbone = tiny.backbone;
    dir = tiny.dir;
    server = await createRankServer({ backbone, model: tiny.model });
    url = await server.listen(0, '127.0.0.1');
    const write = async (field: keyof typeof files, n: number, seed: number) => {
      for (let i = 0; i < n; i++) {
        const format = (['png', 'jpeg', 'webp'] as const)[i % 3];
        const file = path.join(dir, `${field}-${i}.${format === 'jpeg' ? 'jpg' : format}`);
        await fs.writeFile(file, await encodedImage(seed + i, format, 48, 48));
        files[field].push(file);
      }
    };
    await write('liked', 2, 10);
    await write('disliked', 2, 20);
    await write('candidates', 6, 30);
    context = await chromium.launchPersistentContext(await fs.mkdtemp(path.join(os.tmpdir(), 'userpref-chromium-')), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1200, height: 900 },
    });
  }, 180000);

  afterAll(async () => {
    await context?.close();
    await server?.close();
    backbone?.dispose();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('ranks the picked candidates in the order and with the scores of the API', async () => {
    const form = new FormData();
    for (const field of ['liked', 'disliked', 'candidates'] as const) for (const f of files[field]) form.append(field, new Blob([await fs.readFile(f)]), path.basename(f));
    form.append('prompt', 'a cat');
    const api = (await (await fetch(`${url}/v1/rank`, { method: 'POST', body: form })).json()) as Ranking;

    const page = await context.newPage();
    await page.goto(`${url}/`);
    await page.waitForFunction("!document.getElementById('model').textContent.startsWith('loading')");
    expect(await page.textContent('#model')).toMatch(/^idefics2 · base ckpt · adapter none · tokens none · /);
    await page.setInputFiles('#liked', files.liked);
    await page.setInputFiles('#disliked', files.disliked);
    await page.setInputFiles('#candidates', files.candidates);
    expect(await page.locator('#candidates-thumbs img').count()).toBe(6);
    await page.fill('#prompt', 'a cat');
    await page.click('#rank');
    await page.waitForSelector('ol#results li');
    const shown = await page.$$eval('ol#results li', (lis) => lis.map((li) => ({ name: li.querySelector('.name')!.textContent, rank: li.querySelector('.rank')!.textContent, p: li.querySelector('.p')!.textContent, score: li.querySelector('.score')!.textContent, img: (li.querySelector('img') as unknown as { naturalWidth: number }).naturalWidth })));
    expect(shown.map((s) => s.name)).toEqual(api.order.map((i) => path.basename(files.candidates[i])));
    expect(shown.map((s) => s.rank)).toEqual(api.order.map((_, r) => `#${r + 1}`));
    expect(shown.map((s) => s.p)).toEqual(api.order.map((i) => `P(like) ${api.candidates[i].probability.toFixed(3)}`));
    expect(shown.map((s) => s.score)).toEqual(api.order.map((i) => `z+ − z− = ${api.candidates[i].score.toFixed(4)}`));
    expect(shown.every((s) => s.img === 48)).toBe(true);
    expect(await page.textContent('#status')).toMatch(/^6 candidates ranked after 2 reference pairs in [0-9.]+ s \(best first\)\.$/);
    if (process.env.USERPREF_PAGE_SCREENSHOT) await page.screenshot({ path: process.env.USERPREF_PAGE_SCREENSHOT, fullPage: true });

    // A file that is not an image: the service's error, naming it, in the status line.
    const notes = path.join(dir, 'notes.png');
    await fs.writeFile(notes, 'not pixels');
    await page.setInputFiles('#candidates', [files.candidates[0], notes]);
    await page.click('#rank');
    await page.waitForSelector('#status.error');
    expect(await page.textContent('#status')).toBe('candidates[1] (notes.png): not an image (JPEG, PNG or WebP expected)');
    expect(await page.locator('ol#results li').count()).toBe(0);
    await page.close();
  }, 180000);
});
