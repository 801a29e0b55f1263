// Opens identical.html from disk in Debian's Chromium and reports how filenames and
// oriented thumbnails are laid out (issue #13: bidi isolation, EXIF orientation).
//   node check_names.mjs HTML_DIR
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [htmlDir] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
const errors = [];
page.on("pageerror", (e) => errors.push(e.message));
await page.goto(pathToFileURL(path.join(htmlDir, "identical.html")).href);
await page.waitForSelector("body[data-ready='1']", { timeout: 60000 });
const seen = await page.evaluate(() => {
  const rect = (e) => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  return {
    names: [...document.querySelectorAll(".fname")].map((a) => ({
      text: a.textContent,
      bidi: getComputedStyle(a.querySelector("bdi")).unicodeBidi,
      href: a.getAttribute("href"),
    })),
    oriented: [...document.querySelectorAll(".orient")].map((b) => ({
      box: rect(b),
      transform: b.firstElementChild.style.transform,
    })),
    thumbs: [...document.querySelectorAll(".side img")].length,
  };
});
console.log(JSON.stringify({ errors, ...seen }));
await browser.close();
