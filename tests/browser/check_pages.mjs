// Opens the generated review pages from disk in Debian's Chromium (playwright-core),
// exercises them as a person would, takes screenshots, and prints what it saw as JSON.
//   node check_pages.mjs HTML_DIR SCREENSHOT_DIR            (checks)
//   node check_pages.mjs HTML_DIR SCREENSHOT_DIR --time PAGE (seconds to first page)
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [htmlDir, shotDir, flag, timePage] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});
const url = (name) => pathToFileURL(path.join(htmlDir, name)).href;
const out = { dialogs: [], errors: [], pages: {} };

async function open(name) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("dialog", async (d) => { out.dialogs.push(d.message()); await d.dismiss(); });
  page.on("pageerror", (e) => out.errors.push(`${name}: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") out.errors.push(`${name}: ${m.text()}`); });
  return page;
}

if (flag === "--time") {
  const page = await open(timePage);
  const t0 = Date.now();
  await page.goto(url(timePage));
  await page.waitForSelector("body[data-ready='1']", { timeout: 60000 });
  await page.waitForSelector("#list .card", { timeout: 60000 });
  const seconds = (Date.now() - t0) / 1000;
  const info = await page.textContent("#pageinfo");
  await page.screenshot({ path: path.join(shotDir, `time_${timePage}.png`) });
  console.log(JSON.stringify({ seconds, info, errors: out.errors }));
  await browser.close();
  process.exit(0);
}

// overview
{
  const page = await open("index.html");
  await page.goto(url("index.html"));
  out.index = {
    summary: await page.$$eval("#summary tr", (rs) => rs.map((r) => r.innerText)),
    errors: await page.$$eval("#errors tr td:first-child", (ds) => ds.map((d) => d.textContent)),
    scripts: await page.$$eval("script", (s) => s.length),
  };
  await page.screenshot({ path: path.join(shotDir, "index.png"), fullPage: true });
}

// Screenshot-level: how many images of a card are on screen? Each image is hidden in
// turn; one whose hiding leaves the card's screenshot unchanged was not seen.
// The card must have settled first: an image can be `complete` before it is decoded and
// painted, so a screenshot taken then differs from every later one; each comparison is
// therefore between two screenshots that repeat themselves, and an image counts only
// when the card looks the same before hiding it and after showing it again.
// A card that has not settled within 50 screenshots gives null: its measurement is
// taken again (a loaded machine can keep a card repainting for seconds).
async function settledShot(page, card) {
  let prev = await card.screenshot();
  for (let k = 0; k < 50; k++) {
    await page.waitForTimeout(50);
    const cur = await card.screenshot();
    if (cur.equals(prev)) return cur;
    prev = cur;
  }
  return null;
}

async function paintedImages(page, selector) {
  const card = page.locator(selector);
  await card.scrollIntoViewIfNeeded();
  await page.evaluate(() => Promise.all([...document.images].map((i) => i.complete ? 0
    : new Promise((done) => { i.addEventListener("load", done); i.addEventListener("error", done); }))));
  await card.locator("img").evaluateAll((imgs) => Promise.all(
    imgs.map((i) => (i.getAttribute("src") ? i.decode().catch(() => 0) : 0))));
  const imgs = card.locator("img");
  const n = await imgs.count();
  let painted = 0;
  for (let i = 0; i < n; i++) {
    // the card as it is, with image i hidden, and as it is again: a card that changed
    // on its own meanwhile (a late paint on a loaded machine) is measured once more
    for (let attempt = 0; ; attempt++) {
      const before = await settledShot(page, card);
      await imgs.nth(i).evaluate((e) => e.style.setProperty("visibility", "hidden", "important"));
      const shot = await settledShot(page, card);
      await imgs.nth(i).evaluate((e) => e.style.removeProperty("visibility"));
      const after = await settledShot(page, card);
      if (before && shot && after && before.equals(after)) {
        if (!shot.equals(before)) painted++;
        break;
      }
      if (attempt >= 5) throw new Error("the card kept changing on its own");
    }
  }
  return painted;
}

for (const name of ["identical", "transform_resize", "transform_rotate90i", "transform_other"]) {
  const page = await open(`${name}.html`);
  await page.goto(url(`${name}.html`));
  await page.waitForSelector("body[data-ready='1']");
  const r = { cards: await page.$$eval("#list .card", (c) => c.length) };
  r.info = await page.textContent("#pageinfo");
  r.text = await page.textContent("#list");
  r.scripts = await page.$$eval("script", (s) => s.length);
  await page.screenshot({ path: path.join(shotDir, `${name}.png`), fullPage: true });
  // paging, by button and by key
  await page.click("#next");
  r.afterNext = await page.textContent("#pageinfo");
  await page.keyboard.press("p");
  r.afterKeyPrev = await page.textContent("#pageinfo");
  // keyboard selection
  await page.keyboard.press("j");
  r.selected = await page.$eval("#list .card.selected", (c) => c.dataset.index).catch(() => null);
  // search narrows the list
  const first = await page.$eval("#list .card .fname", (a) => a.textContent).catch(() => null);
  if (first) {
    await page.fill("#search", first);
    r.searchInfo = await page.textContent("#pageinfo");
    r.searchFirst = await page.$eval("#list .card .fname", (a) => a.textContent);
    await page.fill("#search", "");
  }
  if (name === "identical") {
    // a decision on the last file of a page's last card moves on to the next page
    r.beforeLastDecision = await page.textContent("#pageinfo");
    await page.locator("#list .card").last().locator(".file").last().locator(".facts").click();
    await page.keyboard.press("d");
    r.afterLastDecision = await page.textContent("#pageinfo");
    r.lastDecisionCount = await page.textContent("#decisioncount");
    await page.evaluate(() => localStorage.clear());
  }
  if (name !== "identical" && r.cards > 0) {
    // the default view of a pair: its two thumbnails side by side, nothing else
    r.paintedImages = await paintedImages(page, "#list .card:first-child");
    // flicker the first pair: the aligned copy must alternate and cover the source,
    // and a label on the image says which file is on screen
    await page.click("#list .card:first-child button.flicker");
    const vis = [];
    r.flickerLabels = [];
    for (let i = 0; i < 6; i++) {
      const seen = await page.$eval("#list .card:first-child", (c) => [
        getComputedStyle(c.querySelector("img.overlay")).visibility,
        c.querySelector(".frame .label").textContent]);
      vis.push(seen[0]);
      r.flickerLabels.push(seen);
      await page.waitForTimeout(250);
    }
    r.flickerStates = vis;
    r.names = await page.$$eval("#list .card:first-child .fname", (a) => a.map((x) => x.textContent));
    await page.waitForFunction(() => document.querySelector("#list .card:first-child")
      .classList.contains("show-copy"));
    r.geometry = await page.$eval("#list .card:first-child", (c) => {
      const b = c.querySelector("img.base").getBoundingClientRect();
      const o = c.querySelector("img.overlay").getBoundingClientRect();
      return { base: [b.x, b.y, b.width, b.height], overlay: [o.x, o.y, o.width, o.height] };
    });
    await page.screenshot({ path: path.join(shotDir, `${name}_flicker.png`) });
    await page.keyboard.press("f"); // stop
    await page.click("#list .card:first-child button.view");
    await page.screenshot({ path: path.join(shotDir, `${name}_blend.png`) });
    r.blend = await page.$eval("#list .card:first-child", (c) => c.classList.contains("blend"));
  }
  out.pages[name] = r;
}
await browser.close();
console.log(JSON.stringify(out));
