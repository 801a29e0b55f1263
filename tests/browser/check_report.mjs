// Opens review pages unpacked from Snakemake's report.zip in Debian's Chromium and
// prints, per page, how many thumbnails loaded and which did not.
//   node check_report.mjs PAGES_DIR SCREENSHOT_DIR page.html [page.html ...]
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [dir, shotDir, ...pages] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});
const out = { errors: [], pages: {} };
for (const name of pages) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("pageerror", (e) => out.errors.push(`${name}: ${e.message}`));
  await page.goto(pathToFileURL(path.join(dir, name)).href);
  await page.waitForSelector("#list .card", { timeout: 60000 });
  const imgs = await page.evaluate(async () => {
    const all = [...document.querySelectorAll("#list img")];
    all.forEach((i) => { i.loading = "eager"; });
    await Promise.all(all.map((i) => i.complete ? 0
      : new Promise((done) => { i.onload = i.onerror = done; })));
    return all.map((i) => ({ src: i.getAttribute("src"), w: i.naturalWidth }));
  });
  out.pages[name] = {
    images: imgs.length,
    loaded: imgs.filter((i) => i.w > 0).length,
    broken: imgs.filter((i) => i.w === 0).map((i) => i.src),
  };
  await page.screenshot({ path: path.join(shotDir, name.replace(".html", ".png")) });
  await page.close();
}
console.log(JSON.stringify(out));
await browser.close();
