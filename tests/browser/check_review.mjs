// A curator's review in Debian's Chromium (playwright-core), on pages opened from disk:
//   node check_review.mjs decide HTML_DIR OUT_DIR   decisions by key and by click on the
//        family, pair and set pages, then export decisions.csv (the download, saved
//        to OUT_DIR/decisions.csv); screenshots in OUT_DIR
//   node check_review.mjs import HTML_DIR CSV BAD_CSV   a fresh browser imports CSV
//        (and refuses BAD_CSV)
//   node check_review.mjs show HTML_DIR OUT_DIR     what a fresh browser shows as decided
// Prints what it saw as JSON.
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [mode, htmlDir, arg, arg2] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const context = await browser.newContext({ acceptDownloads: true,
                                           viewport: { width: 1400, height: 1000 } });
const out = { errors: [], dialogs: [] };
const url = (name) => pathToFileURL(path.join(htmlDir, name)).href;

async function open(name) {
  const page = await context.newPage();
  page.on("dialog", async (d) => { out.dialogs.push(d.message()); await d.dismiss(); });
  page.on("pageerror", (e) => out.errors.push(`${name}: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") out.errors.push(`${name}: ${m.text()}`); });
  await page.goto(url(name));
  await page.waitForSelector("body[data-ready='1']");
  return page;
}

// every family card: its master and its members with their text and decisions
async function families(page) {
  return page.$$eval("#list .card.family", (cards) => cards.map((c) => ({
    master: c.querySelector(".compare figure figcaption .fname").textContent,
    text: c.querySelector(".params").textContent,
    members: [...c.querySelectorAll(".member")].map((m) => ({
      name: m.querySelector(".mname").textContent,
      text: m.querySelector(".mtext").textContent,
      role: [...m.classList].find((k) => k.startsWith("role-")).slice(5),
      badges: [...m.querySelectorAll(".badge")].map((b) => b.textContent),
    })),
  })));
}

const familyCard = (page, master) => page.locator("#list .card.family").filter({
  has: page.locator(".compare figure:first-child .fname", { hasText: master }) });
const tile = (card, name) => card.locator(".member").filter({
  has: card.page().locator(".mname", { hasText: name }) });
const pairCard = (page, a, b) => page.locator("#list .card")
  .filter({ has: page.locator(".fname", { hasText: a }) })
  .filter({ has: page.locator(".fname", { hasText: b }) });

const ASTRO = "Masters/astronaut  master.tif";
const HALF = "web/astronaut half.jpg", PORTRAIT = "web/astronaut portrait.jpg";
const CROP = "press/astronaut crop.jpg", BACKUP = "Backup/old share/astronaut  master.tif";
const COFFEE = "Masters/coffee.tif", COFFEE_HALF = "web/coffee half.jpg";

if (mode === "decide") {
  const shots = arg;
  const page = await open("families.html");
  out.help = await page.textContent("#help");
  out.before = await families(page);
  out.count = await page.textContent("#decisioncount");
  // names keep their double spaces on screen (innerText follows white-space)
  out.shownName = await page.$eval(".compare figure figcaption .fname bdi", (b) => b.innerText);
  await page.screenshot({ path: path.join(shots, "families.png") });
  const astro = familyCard(page, ASTRO);
  await tile(astro, HALF).click();
  await page.keyboard.press("c");                                     // copy, by key
  // a slip on the member the selection moved on to, and its undo
  await page.keyboard.press("x");
  out.slip = await tile(astro, PORTRAIT).locator(".badge").allTextContents();
  await page.keyboard.press("u");
  out.undone = await tile(astro, PORTRAIT).locator(".badge").allTextContents();
  out.undoneCurrent = await astro.locator(".member.current .mname").textContent();
  await tile(astro, CROP).click();
  await astro.locator(".compare button.dec-not_copy").click();       // not a copy, by click
  await tile(astro, PORTRAIT).click();
  await page.keyboard.press("r");                                     // related, by key
  await tile(astro, BACKUP).click();
  await astro.locator(".compare button.dec-redundant").click();      // redundant, by click
  const coffee = familyCard(page, COFFEE);
  await tile(coffee, COFFEE_HALF).click();
  await page.keyboard.press("m");                                     // master, by key
  // the crop against the master: flicker labels the file on screen
  await tile(astro, CROP).click();
  await page.keyboard.press("f");
  const labels = new Set();
  for (let i = 0; i < 6; i++) {
    labels.add(await astro.locator(".frame .label").textContent());
    await page.waitForTimeout(250);
  }
  out.flickerLabels = [...labels];
  await page.screenshot({ path: path.join(shots, "families_flicker.png") });
  await page.keyboard.press("f");
  out.familyDecided = await families(page);
  await page.screenshot({ path: path.join(shots, "families_decided.png") });

  const rot = await open("transform_rotate90i.html");
  await pairCard(rot, PORTRAIT, HALF).locator("button.dec-copy").click();  // copy, by click
  out.rotateBadges = await pairCard(rot, PORTRAIT, HALF).locator(".badge").allTextContents();
  const other = await open("transform_other.html");
  await pairCard(other, CROP, PORTRAIT).locator(".params").click();
  await other.keyboard.press("x");                                    // not a copy, by key
  await pairCard(other, CROP, HALF).locator("button.dec-related").click();  // related, by click
  out.cropOutlines = await other.$$eval("#list .card .side .cropbox", (bs) => bs.length);
  await other.screenshot({ path: path.join(shots, "transform_other_decided.png") });
  const resize = await open("transform_resize.html");
  out.resizeParams = await resize.$$eval("#list .card .params", (ps) => ps.map((p) => p.textContent));
  await resize.screenshot({ path: path.join(shots, "transform_resize.png") });
  const related = await open("related.html");
  out.relatedEmpty = await related.textContent("#list");
  const sets = await open("identical.html");
  out.setsHelp = await sets.textContent("#help");
  const astroSet = sets.locator("#list .card").filter({ has: sets.locator(".fname", { hasText: BACKUP }) });
  await astroSet.locator(".file").filter({ has: sets.locator(".fname", { hasText: ASTRO }) })
    .locator("button.dec-master").click();                           // master, by click
  const coffeeSet = sets.locator("#list .card").filter({ has: sets.locator(".fname", { hasText: COFFEE }) });
  await coffeeSet.locator(".params").click();
  await sets.keyboard.press("l");
  await sets.keyboard.press("d");                                     // redundant, by key
  await sets.keyboard.press("f");                                     // no flicker on sets
  out.setsFlickering = await sets.$$eval(".card.flickering", (c) => c.length);
  out.setBadges = await sets.$$eval("#list .card .badge", (bs) => bs.map((b) => b.textContent));
  await sets.screenshot({ path: path.join(shots, "identical_decided.png") });
  // back on the family page: what the other pages decided shows here too
  await page.reload();
  await page.waitForSelector("body[data-ready='1']");
  out.familyAfter = await families(page);
  out.countAfter = await page.textContent("#decisioncount");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export")]);
  out.download = download.suggestedFilename();
  await download.saveAs(path.join(shots, "decisions.csv"));
} else if (mode === "import") {
  const page = await open("families.html");
  out.countBefore = await page.textContent("#decisioncount");
  await page.setInputFiles("#importfile", arg2);
  await page.waitForFunction(() => document.getElementById("decisionmsg").textContent);
  out.refused = await page.textContent("#decisionmsg");
  out.countRefused = await page.textContent("#decisioncount");
  await page.setInputFiles("#importfile", arg);
  await page.waitForFunction(() => /Imported/.test(document.getElementById("decisionmsg").textContent));
  out.imported = await page.textContent("#decisionmsg");
  out.countAfter = await page.textContent("#decisioncount");
  out.families = await families(page);
} else if (mode === "show") {
  const page = await open("families.html");
  out.count = await page.textContent("#decisioncount");
  out.families = await families(page);
  await page.screenshot({ path: path.join(arg, "families_rerun.png") });
  const rot = await open("transform_rotate90i.html");
  out.rotateBadges = await pairCard(rot, PORTRAIT, HALF).locator(".badge").allTextContents();
  const related = await open("related.html");
  out.relatedCards = await related.$$eval("#list .card", (c) => c.length);
  await related.screenshot({ path: path.join(arg, "related_rerun.png") });
}
await browser.close();
console.log(JSON.stringify(out));
