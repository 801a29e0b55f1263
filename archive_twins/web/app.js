// archive-twins review pages. Static, no server: data comes from data/*.js
// (window.ATW_DATA, and window.ATW_DECISIONS: the decisions the last run read), so
// the pages work opened from disk (file://).
// Every filename is put in the page with textContent, never as HTML.
// A curator's decisions are kept in the browser (localStorage, per results
// directory) until they are exported to decisions.csv for the next run.
"use strict";

(function () {
  const D = window.ATW_DATA;
  const DEC = window.ATW_DECISIONS || { fields: [], items: [], store: "" };
  const PAGE_SIZE = D.mode === "families" ? 8 : 24;
  // Files and items come as compact arrays; D.fields names their columns (html.py
  // derives them from the records), so they are read by name here, never by position.
  const named = (names) => (row) => {
    const o = {};
    for (let i = 0; i < names.length; i++) o[names[i]] = row[i];
    return o;
  };
  const F = D.files.map(named(D.fields.file));
  // a link is the archive's root and the name (encoded by html.py when it differs);
  // a thumbnail is found by the content's sha256 (the store's layout, from html.py)
  const hrefOf = (f) => D.href_prefix + (f.href ?? f.filename);
  const thumbOf = (f) => f.thumb ? D.thumb_template
    .replace("{d}", f.sha256.slice(0, D.thumb_split)).replace("{sha}", f.sha256) : "";
  const ITEMS = D.items.map(named(D.fields.item));
  // A family's members are named when first needed (a page of cards, a filter):
  // 30,000 families hold 90,000 members.
  const memberRow = named(D.fields.member || []);
  function fam(it) {
    if (!it.others) {
      it.members = it.members.map(memberRow);
      it.master = it.members.find((m) => m.role === "master");
      it.others = it.members.filter((m) => m.role !== "master");
      // a member is a pair: the master (file1) and the member (file2)
      for (const m of it.members) { m.file1 = it.master.file; m.file2 = m.file; }
    }
    return it;
  }
  const state = { page: 0, q: "", min: "", max: "", mirror: "any", sort: "default",
                  review: "all", folder: "", sel: 0, rows: [], flicker: null };

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const kid of kids) if (kid) e.appendChild(kid);
    return e;
  }

  function fmtSize(n) {
    if (n == null) return "";
    const u = ["B", "KB", "MB", "GB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + u[i];
  }

  // ---- decisions -----------------------------------------------------------------
  // One decision per pair (by the two sha256s, in either order) and one per file (by
  // its sha256 and name: byte-identical files are told apart by name). The
  // decisions the last run read come from data/decisions.js; the browser keeps the
  // ones made since (a cleared one as null), and an export writes both together.

  const HEADER = ["sha256_1", "sha256_2", "filename_1", "filename_2", "decision", "note",
                  "decided_at"];
  const FILE_DECISIONS = new Set(["master", "redundant"]);
  const LABEL = { copy: "✓ copy", not_copy: "✗ not a copy", related: "≈ related",
                  master: "★ master", redundant: "♻ redundant" };
  const pairKey = (a, b) => "p:" + [a, b].sort().join(":");
  const fileKey = (sha, name) => `f:${sha}:${name}`;
  const keyOf = (d) => FILE_DECISIONS.has(d.decision) ? fileKey(d.sha1, d.f1)
                                                      : pairKey(d.sha1, d.sha2);
  const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, "Z");

  const Decisions = (() => {
    const ns = "archive-twins decisions:" + DEC.store;
    const fromFile = new Map();
    for (const r of DEC.items.map(named(DEC.fields))) {
      const d = { sha1: r.sha256_1, sha2: r.sha256_2 || "", f1: r.filename_1 || "",
                  f2: r.filename_2 || "", decision: r.decision, note: r.note || "",
                  at: r.decided_at || "", status: r.status };
      fromFile.set(keyOf(d), d);
    }
    const pack = (d) => d && [d.sha1, d.sha2, d.f1, d.f2, d.decision, d.note, d.at];
    const unpack = (v) => {
      if (!v) return null;
      const [sha1, sha2, f1, f2, decision, note, at] = v;
      return { sha1, sha2, f1, f2, decision, note, at };
    };
    const same = (a, b) => !a === !b && (!a || (a.decision === b.decision &&
      a.note === b.note && a.at === b.at));
    let local = {};
    function load() {
      try { local = JSON.parse(localStorage.getItem(ns) || "{}") || {}; } catch (e) { local = {}; }
      // what the last run read already holds needs no copy in the browser
      for (const [k, v] of Object.entries(local))
        if (same(unpack(v), fromFile.get(k) || null)) delete local[k];
    }
    function save() {
      try {
        if (Object.keys(local).length) localStorage.setItem(ns, JSON.stringify(local));
        else localStorage.removeItem(ns);
        message("");
        return true;
      } catch (e) {
        message("The browser's storage for decisions is full: export decisions.csv now " +
                "and run the workflow with it; this decision was not kept.", true);
        return false;
      }
    }
    function get(key) {
      if (key in local) return unpack(local[key]);
      return fromFile.get(key) || null;
    }
    function set(d) {
      const key = keyOf(d), before = local[key];
      if (same(d, fromFile.get(key) || null)) delete local[key];
      else local[key] = pack(d);
      if (!save()) { if (before === undefined) delete local[key]; else local[key] = before; }
      refresh();
    }
    function clear(key) {
      const before = local[key];
      if (fromFile.has(key)) local[key] = null; else delete local[key];
      if (!save()) { if (before === undefined) delete local[key]; else local[key] = before; }
      refresh();
    }
    function all() {
      const out = new Map(fromFile);
      for (const [k, v] of Object.entries(local)) {
        if (v) out.set(k, unpack(v)); else out.delete(k);
      }
      return [...out.values()];
    }
    const pending = () => Object.keys(local).length;
    window.addEventListener("storage", (ev) => { if (ev.key === ns) { load(); refresh(); } });
    load();
    return { get, set, clear, all, pending, fromFile };
  })();

  function csvCell(v) {
    v = v == null ? "" : String(v);
    return /[",\r\n]|^\s|\s$/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
  }

  function toCSV(rows) {
    const lines = [HEADER, ...rows.map((d) => [d.sha1, d.sha2, d.f1, d.f2, d.decision,
                                               d.note, d.at])];
    // a byte order mark, so a spreadsheet opens the UTF-8 names as UTF-8
    return "\ufeff" + lines.map((r) => r.map(csvCell).join(",")).join("\r\n") + "\r\n";
  }

  // RFC 4180 records with the line each starts on.
  function parseCSV(text) {
    const recs = [];
    let rec = [], cell = "", quoted = false, line = 1, start = 1, i = 0;
    if (text.charCodeAt(0) === 0xfeff) i = 1;
    const endCell = () => { rec.push(cell); cell = ""; };
    const endRec = () => { endCell(); recs.push({ line: start, cells: rec }); rec = []; };
    for (; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
        else if (c === '"') quoted = false;
        else { if (c === "\n") line++; cell += c; }
      } else if (c === '"' && cell === "") quoted = true;
      else if (c === ",") endCell();
      else if (c === "\r" || c === "\n") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        endRec(); line++; start = line;
      } else cell += c;
    }
    if (cell !== "" || rec.length) endRec();
    return recs.filter((r) => r.cells.some((c) => c.trim() !== ""));
  }

  // The checks the workflow makes (archive_twins/decisions.py), so a file the run
  // would refuse is refused here too, naming the line and the column.
  function readDecisions(text, name) {
    const recs = parseCSV(text);
    if (!recs.length) throw new Error(`${name}, line 1: empty, expected the header`);
    const head = recs[0].cells.map((h) => h.trim());
    const col = {};
    HEADER.forEach((h, i) => {
      if (!head.includes(h))
        throw new Error(`${name}, line 1, column ${i + 1} (${h}): missing; the header must be ${HEADER.join(",")}`);
      col[h] = head.indexOf(h);
    });
    const sha = /^[0-9a-f]{64}$/;
    const out = [];
    for (const r of recs.slice(1)) {
      const where = (h) => `${name}, line ${r.line}, column ${col[h] + 1} (${h})`;
      if (r.cells.length !== head.length)
        throw new Error(`${name}, line ${r.line}: ${r.cells.length} fields, the header has ${head.length}`);
      const v = (h) => r.cells[col[h]];
      const decision = v("decision").trim().toLowerCase();
      if (!(decision in LABEL)) throw new Error(`${where("decision")}: unknown decision '${v("decision")}'`);
      const d = { sha1: v("sha256_1").trim().toLowerCase(), sha2: v("sha256_2").trim().toLowerCase(),
                  f1: v("filename_1"), f2: v("filename_2"), decision, note: v("note"),
                  at: v("decided_at").trim() };
      if (!sha.test(d.sha1)) throw new Error(`${where("sha256_1")}: not a sha256 (64 hex digits)`);
      if (FILE_DECISIONS.has(decision)) {
        if (d.sha2 || d.f2.trim()) throw new Error(`${where("sha256_2")}: must be empty for a ${decision} decision`);
      } else if (!sha.test(d.sha2)) throw new Error(`${where("sha256_2")}: not a sha256 (64 hex digits)`);
      else if (d.sha1 === d.sha2) throw new Error(`${where("sha256_2")}: the pair's two files are the same content`);
      if (d.at && isNaN(Date.parse(d.at))) throw new Error(`${where("decided_at")}: not an ISO 8601 time`);
      out.push(d);
    }
    return out;
  }

  function exportDecisions() {
    const rows = Decisions.all();
    const url = URL.createObjectURL(new Blob([toCSV(rows)], { type: "text/csv;charset=utf-8" }));
    const a = el("a", { href: url, download: "decisions.csv" });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
    message(`Exported ${rows.length} decisions to decisions.csv: put it in the results ` +
            "directory (or pass --config decisions=PATH) and run the workflow again.");
  }

  function importDecisions(file) {
    file.text().then((text) => {
      let rows;
      try { rows = readDecisions(text, file.name); } catch (e) {
        message(`Not imported: ${e.message}`, true);
        return;
      }
      let n = 0;
      for (const d of rows) {
        const cur = Decisions.get(keyOf(d));
        if (cur && cur.at > d.at) continue;  // a later decision in the browser stays
        Decisions.set(d);
        n++;
      }
      message(`Imported ${n} of ${rows.length} decisions from ${file.name}.`);
    });
  }

  function message(text, bad) {
    const m = document.getElementById("decisionmsg");
    if (!m) return;
    m.textContent = text;
    m.classList.toggle("bad", !!bad);
  }

  function decisionBar() {
    const input = el("input", { type: "file", id: "importfile", accept: ".csv,text/csv" });
    input.addEventListener("change", () => {
      if (input.files[0]) importDecisions(input.files[0]);
      input.value = "";
    });
    document.getElementById("decisionbar").append(
      el("span", { id: "decisioncount" }),
      el("button", { id: "export", text: "export decisions.csv", onclick: exportDecisions }),
      el("label", { class: "button", for: "importfile", text: "import decisions…" }), input,
      el("span", { id: "decisionmsg" }));
  }

  function decisionCount() {
    const n = Decisions.all().length, p = Decisions.pending();
    const c = document.getElementById("decisioncount");
    if (c) c.textContent = `${n} decisions` + (p ? ` (${p} made here since the last run: export them)` : "");
  }

  function pairDecision(a, b) { return Decisions.get(pairKey(F[a].sha256, F[b].sha256)); }
  function fileDecision(fi) { return Decisions.get(fileKey(F[fi].sha256, F[fi].filename)); }

  // What `u` undoes: the decisions made on this page, latest last, each step with
  // what it replaced and the card (and member) selected when it was made.
  const undoStack = [];
  let batch = null;  // the steps of one `a` (accept a family's copies)
  function remember(key) {
    const change = [key, Decisions.get(key)];
    if (batch) batch.push(change);
    else undoStack.push({ changes: [change], page: state.page, sel: state.sel,
                          cur: (cards()[state.sel] || {})._cur });
  }

  function decidePair(a, b, decision, note) {
    const prev = pairDecision(a, b);
    remember(pairKey(F[a].sha256, F[b].sha256));
    Decisions.set({ sha1: F[a].sha256, sha2: F[b].sha256, f1: F[a].filename, f2: F[b].filename,
                    decision, note: note ?? (prev ? prev.note : ""), at: now() });
  }

  function decideFile(fi, decision, note) {
    const prev = fileDecision(fi);
    remember(fileKey(F[fi].sha256, F[fi].filename));
    Decisions.set({ sha1: F[fi].sha256, sha2: "", f1: F[fi].filename, f2: "", decision,
                    note: note ?? (prev ? prev.note : ""), at: now() });
  }

  function badge(d) {
    if (!d) return null;
    const b = el("span", { class: `badge dec-${d.decision}`, text: LABEL[d.decision] });
    b.title = (d.note ? `${d.note}\n` : "") + (d.at ? `decided ${d.at}` : "");
    return b;
  }

  // ---- thumbnails ------------------------------------------------------------------

  function fileLine(fi, extra) {
    const f = F[fi];
    // <bdi>: a right-to-left override in one name cannot reorder the text after it
    const a = el("a", { class: "fname", href: hrefOf(f), title: "open the original file" },
      el("bdi", { text: f.filename }));
    const facts = ` ${f.width}×${f.height} ${f.format || ""} ${fmtSize(f.size_bytes)}`;
    return el("div", { class: "file" }, a, el("span", { class: "facts", text: facts }), extra);
  }

  function thumb(fi, cls) {
    const f = F[fi];
    const img = el("img", { src: thumbOf(f), class: cls || "thumb", loading: "lazy", alt: "" });
    img.width = f.thumb_w;
    img.height = f.thumb_h;
    return img;
  }

  // Thumbnails hold the raw (unrotated) pixels that matching uses; the side-by-side
  // view shows them as a viewer would, turned by the file's EXIF Orientation.
  const ORIENT = { 2: "scaleX(-1)", 3: "rotate(180deg)", 4: "scaleY(-1)",
                   5: "rotate(-90deg) scaleX(-1)", 6: "rotate(90deg)",
                   7: "rotate(90deg) scaleX(-1)", 8: "rotate(-90deg)" };

  // A thumbnail at most `max` px on its longer side (never enlarged), with the box
  // `crop` (x, y, w, h in the file's pixels) outlined on it, turned by its EXIF
  // orientation.
  function shown(fi, max, crop) {
    const f = F[fi];
    if (!f.thumb_w || !f.thumb_h) return thumb(fi);
    const s = Math.min(max / f.thumb_w, max / f.thumb_h, 1);
    const w = f.thumb_w * s, h = f.thumb_h * s;
    const box = el("span", { class: "tbox" }, thumb(fi));
    box.style.width = w + "px";
    box.style.height = h + "px";
    if (crop) {
      const k = w / f.width;
      const c = el("span", { class: "cropbox", title: "the part of this file the copy holds" });
      Object.assign(c.style, { left: crop[0] * k + "px", top: crop[1] * k + "px",
                               width: crop[2] * k + "px", height: crop[3] * k + "px" });
      box.appendChild(c);
    }
    const o = f.exif_orientation;
    if (!ORIENT[o]) return box;
    const swap = o >= 5;
    const turned = el("span", { class: "orient", title: `EXIF orientation ${o}` }, box);
    turned.style.width = (swap ? h : w) + "px";
    turned.style.height = (swap ? w : h) + "px";
    box.style.transform = `translate(-50%, -50%) ${ORIENT[o]}`;
    return turned;
  }

  // ---- pairs ---------------------------------------------------------------------
  // pair: file1, file2 (indexes into F), then the copy_pairs columns (kind, scale, angle,
  // mirrored, crop_x..crop_h, homography as 9 numbers, inliers, score, method, ...)

  function invert3(m) {
    const [a, b, c, d, e, f, g, h, i] = m;
    const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
    const det = a * A + b * B + c * C;
    return [A / det, -(b * i - c * h) / det, (b * f - c * e) / det,
            B / det, (a * i - c * g) / det, -(a * f - c * d) / det,
            C / det, -(a * h - b * g) / det, (a * e - b * d) / det];
  }

  function mul3(p, q) {
    const r = new Array(9).fill(0);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++)
        for (let k = 0; k < 3; k++) r[3 * i + j] += p[3 * i + k] * q[3 * k + j];
    return r;
  }

  // CSS transform that draws file2's thumbnail (natural size) in file1's display frame:
  // display <- file1 pixels <- (H^-1) file2 pixels <- file2 thumbnail pixels.
  function alignMatrix(pair, displayScale) {
    const f2 = F[pair.file2];
    const s2 = [f2.width / f2.thumb_w, 0, 0, 0, f2.height / f2.thumb_h, 0, 0, 0, 1];
    const d = [displayScale, 0, 0, 0, displayScale, 0, 0, 0, 1];
    const m = mul3(d, mul3(invert3(pair.homography), s2));
    const n = m.map((v) => v / m[8]);
    return `matrix3d(${n[0]},${n[3]},0,${n[6]},${n[1]},${n[4]},0,${n[7]},0,0,1,0,${n[2]},${n[5]},0,${n[8]})`;
  }

  const sameSize = (p) => p.kind === "resize" && Math.abs(p.scale - 1) < 0.005;

  // kind and parameters: the copy's relation to its source (or a member's to its master)
  function relationText(p) {
    if (p.kind === "identical") return "same bytes";
    if (p.kind === "same_pixels") return "same pixels, other bytes";
    if (sameSize(p) && !p.mirrored && !p.angle) return "re-encoded, same size";
    const src = F[p.file1];
    const none = p.kind === "other" && p.crop_w != null &&
      p.crop_w * p.crop_h < 0.005 * src.width * src.height;
    // a crop reads as one: its box in the source, the scale only when it changed
    const crop = none ? null : cropOf(p, p.file1);
    const parts = [];
    if (p.kind === "rotate90i") parts.push(`rotated ${Math.round(p.angle)}°`);
    else if (crop) {
      const [x, y, w, h] = crop.map((v) => v.toFixed(0));
      parts.push(`cropped to ${w}×${h} at ${x},${y}`);
    } else parts.push(p.kind === "resize" ? "resized" : p.kind);
    const turn = ((p.angle % 360) + 540) % 360 - 180;  // clockwise, -180..180
    if (p.kind !== "rotate90i" && Math.abs(turn) >= 0.1) parts.push(`turned ${+turn.toFixed(2)}°`);
    if (!crop || Math.abs(p.scale - 1) >= 0.005) parts.push(`scale ${+p.scale.toFixed(4)}`);
    if (p.mirrored) parts.push("mirrored");
    if (p.colour_change) parts.push("colour change");
    if (none) parts.push("no part of the source");
    if (p.kind === "other" && p.area_fraction != null)
      parts.push(`area ${(100 * p.area_fraction).toFixed(1)}%`);
    return parts.join(" · ");
  }

  function paramText(p) {
    const parts = [relationText(p)];
    if (p.inliers != null) parts.push(`${p.inliers} inliers`);
    parts.push(`score ${(+p.score).toFixed(3)}`, p.method);
    // what made file 1 the source: "source by date" says the pixels could not tell
    if (p.direction_by) parts.push(`source by ${p.direction_by}`);
    return parts.join(" · ");
  }

  // the crop box to outline on the source, when the copy holds only part of it
  function cropOf(p, src) {
    if (p.kind !== "other" || p.crop_w == null) return null;
    const f = F[src];
    const whole = p.crop_x <= 1 && p.crop_y <= 1 && p.crop_w >= f.width - 2 && p.crop_h >= f.height - 2;
    return whole ? null : [p.crop_x, p.crop_y, p.crop_w, p.crop_h];
  }

  // The aligned view of two files: side by side (the default), flicker or blend.
  // `names` label the two in the flicker view; `captions` puts each file's name
  // under its thumbnail in the side-by-side view.
  function compareView(p, width, sideMax, names, captions) {
    const f1 = F[p.file1];
    const ds = width / f1.width;
    const h = Math.round(f1.height * ds);
    const frame = el("div", { class: "frame" });
    frame.style.width = `${width}px`;
    frame.style.height = `${h}px`;
    const base = thumb(p.file1, "base");
    base.style.width = `${width}px`;
    base.style.height = `${h}px`;
    const top = thumb(p.file2, "overlay");
    top.style.transform = alignMatrix(p, ds);
    const label = el("div", { class: "label" });
    label.dataset.a = `${names[0]}: ${f1.filename}`;
    label.dataset.b = `${names[1]}: ${F[p.file2].filename}`;
    label.textContent = label.dataset.a;
    frame.append(base, top, label);
    const one = (fi, crop, name) => captions
      ? el("figure", {}, shown(fi, sideMax, crop), el("figcaption", {},
          el("span", { class: "role", text: name }), fileLine(fi)))
      : shown(fi, sideMax, crop);
    const side = el("div", { class: "side" }, one(p.file1, cropOf(p, p.file1), names[0]),
      one(p.file2, null, names[1]));
    return [frame, side];
  }

  function viewButtons(card) {
    return [el("button", { class: "flicker", text: "flicker (f)", onclick: () => toggleFlicker(card) }),
            el("button", { class: "view", text: "blend (b)", onclick: () => toggleBlend(card) })];
  }

  // buttons for `choices` ([decision, key, text]), pressed for the `active` decisions
  function decisionButtons(choices, active, onpick, withKeys = true) {
    return choices.map(([decision, key, text]) => {
      const b = el("button", { class: `decide dec-${decision}`, title: `key ${key}`,
                               text: withKeys ? `${text} (${key})` : text,
                               onclick: (ev) => { ev.stopPropagation(); onpick(decision); } });
      b.setAttribute("aria-pressed", String(active.includes(decision)));
      return b;
    });
  }

  function noteInput(get, save) {
    const note = el("input", { class: "note", placeholder: "note (e)", type: "text" });
    note.value = get();
    note.addEventListener("click", (ev) => ev.stopPropagation());
    note.addEventListener("change", () => save(note.value));
    note.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === "Escape") { ev.preventDefault(); note.blur(); }
    });
    return note;
  }

  const PAIR_CHOICES = {
    copies: [["copy", "c", "copy"], ["not_copy", "x", "not a copy"], ["related", "r", "related"]],
    related: [["related", "r", "related"], ["not_copy", "x", "not related"]],
  };

  function pairCard(p, idx) {
    const card = el("article", { class: "card", "data-index": String(idx) });
    const [frame, side] = compareView(p, 360, 176, ["source", "copy"]);
    const masterBtn = (fi) => D.page === "copies" ? el("button", {
      class: "decide small", text: "★ master", title: "this file is the master of its family",
      onclick: (ev) => { ev.stopPropagation(); decideFile(fi, "master"); } }) : null;
    const status = el("div", { class: "status" });
    const buttons = el("div", { class: "decisions" });
    card._update = () => {
      const d = pairDecision(p.file1, p.file2);
      card.classList.toggle("decided", !!d);
      buttons.replaceChildren(
        ...decisionButtons(PAIR_CHOICES[D.page], d ? [d.decision] : [],
          (dec) => decidePair(p.file1, p.file2, dec, note.value)),
        note);
      status.replaceChildren(...[badge(d), badge(fileDecision(p.file1)), badge(fileDecision(p.file2))].filter(Boolean));
      if (p.reviewed && !d) status.appendChild(el("span", { class: "badge", text: "reviewed" }));
    };
    const note = noteInput(() => (pairDecision(p.file1, p.file2) || {}).note || "",
      (v) => { const d = pairDecision(p.file1, p.file2); if (d) decidePair(p.file1, p.file2, d.decision, v); });
    card.append(el("div", { class: "params", text: paramText(p) }),
      fileLine(p.file1, masterBtn(p.file1)), fileLine(p.file2, masterBtn(p.file2)),
      status, buttons, el("div", { class: "tools" }, ...viewButtons(card)), frame, side);
    card._update();
    card.addEventListener("click", () => select(idx));
    return card;
  }

  function toggleFlicker(card) {
    if (state.flicker) {
      clearInterval(state.flicker.timer);
      state.flicker.card.classList.remove("flickering", "show-copy");
      const same = state.flicker.card === card;
      state.flicker = null;
      if (same) return;
    }
    card.classList.remove("blend");
    card.classList.add("flickering");
    const label = card.querySelector(".frame .label");
    if (label) label.textContent = label.dataset.a;
    const timer = setInterval(() => {
      const copy = card.classList.toggle("show-copy");
      if (label) label.textContent = copy ? label.dataset.b : label.dataset.a;
    }, 450);
    state.flicker = { card, timer };
  }

  function toggleBlend(card) {
    if (state.flicker && state.flicker.card === card) toggleFlicker(card);
    const on = card.classList.toggle("blend");
    const label = card.querySelector(".frame .label");
    if (label) label.textContent = on ? "blend: both at 50 %" : label.dataset.a;
  }

  function sideBySide(card) {
    if (state.flicker && state.flicker.card === card) toggleFlicker(card);
    card.classList.remove("blend");
  }

  // ---- sets ----------------------------------------------------------------------

  function setCard(s, idx) {
    const kind = s.kind === "identical" ? "byte-identical" : "same pixels, different bytes";
    const card = el("article", { class: "card set", "data-index": String(idx) },
      el("div", { class: "params", text: `${kind} · ${s.files.length} files` }));
    card._cur = 0;
    card._setMember = (j) => { card._cur = j; card._update(); };
    // the first file is the one the master rules keep (html.py puts it first)
    const lines = s.files.map((fi, j) => {
      const status = el("span", { class: "status" });
      const line = fileLine(fi, el("span", { class: "filetools" },
        j ? null : el("span", { class: "kept", text: "kept",
                                title: "the master rules keep this file (csv/redundant.csv)" }),
        status,
        ...decisionButtons([["master", "m", "★ master"], ["redundant", "d", "♻ redundant"]], [],
          (dec) => { card._cur = j; select(idx, false); decideFile(fi, dec); }, false)));
      line._status = status;
      line._fi = fi;
      line.addEventListener("click", () => { card._cur = j; select(idx, false); });
      return line;
    });
    card.append(...lines);
    card.appendChild(el("div", { class: "side" }, ...s.files.slice(0, 6).map((fi) => shown(fi, 176))));
    card._update = () => {
      let any = false;
      for (const line of lines) {
        const d = fileDecision(line._fi);
        any = any || !!d;
        line._status.replaceChildren(...[badge(d)].filter(Boolean));
        line.querySelectorAll("button.decide").forEach((b) =>
          b.setAttribute("aria-pressed", String(!!d && b.classList.contains(`dec-${d.decision}`))));
      }
      card.classList.toggle("decided", any);
      lines.forEach((line, j) => line.classList.toggle("current",
        card.classList.contains("selected") && j === card._cur));
    };
    card._update();
    card.addEventListener("click", () => select(idx));
    return card;
  }

  // ---- families ------------------------------------------------------------------

  // the copy pair that brought a derivative into its family: with its master, or
  // with the member the chain reaches it through
  const edgeOf = (fam, m) => m.role === "derivative" ? [m.via ?? fam.master.file, m.file] : null;

  function memberDecisions(fam, m) {
    const e = edgeOf(fam, m);
    return [e ? pairDecision(e[0], e[1]) : null, fileDecision(m.file)];
  }

  // reviewed: every derivative has a decision (on its pair or as a file)
  function toReview(fam) {
    return fam.others.filter((m) => m.role === "derivative" &&
      !memberDecisions(fam, m).some(Boolean)).length;
  }

  // a member's relation to the master, or for a duplicate, which file it repeats
  function memberText(m) {
    if (m.role === "duplicate") {
      const of = F[m.duplicate_of];
      const how = of.sha256 === F[m.file].sha256 ? "same bytes as" : "same pixels as";
      return m.hops === 0 ? `${how} the master` : `${how} ${of.filename}`;
    }
    return (m.explained ? "" : "not explained · ") + (m.hops > 1 ? `${m.hops} copies away · ` : "") +
      relationText(m);
  }

  function familyCard(fam, idx) {
    const card = el("article", { class: "card family", "data-index": String(idx) });
    const head = el("div", { class: "params" });
    const nd = fam.others.filter((m) => m.role === "derivative").length;
    const count = (n, what) => `${n} ${what}${n === 1 ? "" : "s"}`;
    head.append(el("span", { text: `${fam.size} files: ${count(nd, "derivative")}, ` +
                                    count(fam.size - 1 - nd, "duplicate") }));
    if (fam.mixed) {
      const bad = fam.members.filter((m) => !m.explained).length;
      head.append(el("span", { class: "mixed", text: ` · mixed: ${bad} not explained from the master`,
        title: "some member is not derived from the master by a copy or a chain of copies: " +
               "two photographs joined by a collage or a chain of crops?" }));
    }
    const progress = el("span", { class: "progress" });
    head.append(progress);
    const view = el("div", { class: "compare" });
    const strip = el("div", { class: "strip" });
    const tiles = fam.others.map((m, j) => {
      const status = el("span", { class: "status" });
      const t = el("div", { class: `member role-${m.role}` + (m.explained ? "" : " unexplained") },
        shown(m.file, 110), el("div", { class: "mtext", text: memberText(m) }),
        el("div", { class: "mname" }, el("bdi", { text: F[m.file].filename })), status);
      t.title = F[m.file].filename;
      t._status = status;
      t.addEventListener("click", (ev) => {
        ev.stopPropagation();
        card._cur = j;
        select(idx, false);
        showMember();
      });
      return t;
    });
    strip.append(...tiles);
    const masterLine = el("span", { class: "masterline" });
    card._cur = 0;
    const decisions = el("div", { class: "decisions" });
    // the decision buttons of the member in view, pressed for its decisions
    function refreshView() {
      const m = fam.others[Math.min(card._cur, fam.others.length - 1)];
      const [pd, fd] = memberDecisions(fam, m);
      const e = edgeOf(fam, m);
      const choices = [...(e ? PAIR_CHOICES.copies : []), ["master", "m", "★ master"],
                       ["redundant", "d", "♻ redundant"]];
      const note = noteInput(() => ((e && pd) || fd || {}).note || "", (v) => {
        if (e && pd) decidePair(e[0], e[1], pd.decision, v);
        else if (fd) decideFile(m.file, fd.decision, v);
      });
      const pick = (dec) => FILE_DECISIONS.has(dec) ? decideFile(m.file, dec, note.value)
                                                    : decidePair(e[0], e[1], dec, note.value);
      const active = [pd, fd].filter(Boolean).map((d) => d.decision);
      decisions.replaceChildren(...decisionButtons(choices, active, pick), note);
    }
    // the selected member against the master: side by side, flicker or blend
    function showMember() {
      if (state.flicker && state.flicker.card === card) toggleFlicker(card);
      card.classList.remove("blend");
      const j = Math.min(card._cur, fam.others.length - 1);
      const m = fam.others[j];
      tiles.forEach((t, k) => t.classList.toggle("current", k === j));
      const [frame, side] = compareView(m, 500, 300, ["master", m.role], true);
      const via = m.via !== null && m.via !== undefined ? ` (composed through ${F[m.via].filename})` : "";
      refreshView();
      view.replaceChildren(frame, side,
        el("div", { class: "relation", text: `${m.role}: ${memberText(m)}${via}` }),
        decisions, el("div", { class: "tools" }, ...viewButtons(card), masterLine));
    }
    card._update = () => {
      const fdm = fileDecision(fam.master.file);
      masterLine.replaceChildren(...[badge(fdm)].filter(Boolean));
      for (const [j, t] of tiles.entries()) {
        const ds = memberDecisions(fam, fam.others[j]).filter(Boolean);
        t._status.replaceChildren(...ds.map(badge));
        t.classList.toggle("decided", ds.length > 0);
      }
      const left = toReview(fam);
      progress.textContent = nd ? (left ? ` · ${left} of ${nd} to review` : " · ✓ reviewed") : "";
      card.classList.toggle("decided", nd > 0 && !left);
      if (!view.childElementCount) showMember();
      else refreshView();
    };
    card._setMember = (j) => { card._cur = j; card._update(); showMember(); };
    card.append(head, el("div", { class: "fambody" }, view, strip));
    if (!fam.others.length) strip.append(el("p", { text: "(no other members)" }));
    else card._update();
    card.addEventListener("click", () => select(idx));
    return card;
  }

  function acceptFamily(fam) {
    batch = [];
    for (const m of fam.others) {
      const e = edgeOf(fam, m);
      if (e && !memberDecisions(fam, m).some(Boolean)) decidePair(e[0], e[1], "copy", "");
    }
    if (batch.length) undoStack.push({ changes: batch, page: state.page, sel: state.sel, cur: 0 });
    batch = null;
  }

  // ---- filtering, paging, keyboard -----------------------------------------------

  function fileIndexes(item) {
    if (D.mode === "sets") return item.files;
    if (D.mode === "families") return fam(item).members.map((m) => m.file);
    return [item.file1, item.file2];
  }

  function param(item) {
    // a set's or family's size, or the pair column the page is about (from html.py)
    if (D.mode === "sets") return item.files.length;
    if (D.mode === "families") return item.size;
    return item[D.param_field];
  }

  function reviewed(item) {
    if (D.mode === "families") return toReview(fam(item)) === 0;
    if (D.mode === "sets") return item.files.some((fi) => fileDecision(fi));
    return !!pairDecision(item.file1, item.file2);
  }

  function filtered() {
    const q = state.q.toLowerCase();
    const lo = state.min === "" ? -Infinity : +state.min;
    const hi = state.max === "" ? Infinity : +state.max;
    let rows = ITEMS.filter((it) => {
      if (q && !fileIndexes(it).some((i) => F[i].filename.toLowerCase().includes(q))) return false;
      if (state.folder && !fileIndexes(it).some((i) => F[i].filename.startsWith(state.folder))) return false;
      const v = param(it);
      if (v < lo || v > hi) return false;
      if (state.mirror !== "any") {
        if (D.mode === "pairs" && String(it.mirrored) !== state.mirror) return false;
        if (D.mode === "sets" && it.kind !== state.mirror) return false;
        if (D.mode === "families" && !fam(it).others.some((m) => m.kind === state.mirror)) return false;
      }
      if (state.review !== "all" && reviewed(it) !== (state.review === "done")) return false;
      return true;
    });
    if (state.sort === "param") {
      const sign = D.mode === "families" ? -1 : 1;  // families: larger first
      rows = rows.slice().sort((a, b) => sign * (param(a) - param(b)));
    }
    if (state.sort === "score" && D.mode === "pairs")
      rows = rows.slice().sort((a, b) => a.score - b.score);
    if (state.sort === "name") {
      const name = (it) => F[fileIndexes(it)[0]].filename;
      rows = rows.slice().sort((a, b) => (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0));
    }
    return rows;
  }

  const CARD = { pairs: pairCard, sets: setCard, families: (it, i) => familyCard(fam(it), i) };

  function render() {
    if (state.flicker) toggleFlicker(state.flicker.card);
    state.rows = filtered();
    const pages = Math.max(1, Math.ceil(state.rows.length / PAGE_SIZE));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const list = document.getElementById("list");
    list.replaceChildren();
    const start = state.page * PAGE_SIZE;
    state.rows.slice(start, start + PAGE_SIZE).forEach((it, i) => {
      list.appendChild(CARD[D.mode](it, i));
    });
    if (!state.rows.length) {
      list.appendChild(el("p", { class: "empty", text: ITEMS.length
        ? `No ${D.unit} match the filters.` : `No ${D.unit} were found in this archive.` }));
    }
    document.getElementById("pageinfo").textContent =
      `page ${state.page + 1} of ${pages} · ${state.rows.length} of ${ITEMS.length} ${D.unit}`;
    state.sel = Math.min(state.sel, Math.max(0, list.children.length - 1));
    select(state.sel, false);
    decisionCount();
    history.replaceState(null, "", `#page=${state.page + 1}`);
  }

  function refresh() {
    document.querySelectorAll("#list .card").forEach((c) => c._update && c._update());
    decisionCount();
  }

  function cards() { return document.querySelectorAll("#list .card"); }

  function select(i, scroll = true) {
    const cs = cards();
    const before = cs[state.sel];
    cs.forEach((c) => c.classList.remove("selected"));
    if (!cs.length) return;
    state.sel = Math.max(0, Math.min(i, cs.length - 1));
    const c = cs[state.sel];
    c.classList.add("selected");
    if (before && before !== c && before._update) before._update();
    if (c._update) c._update();
    if (scroll) c.scrollIntoView({ block: "nearest" });
  }

  function go(delta) { state.page += delta; state.sel = 0; render(); }

  function current() {
    const it = state.rows[state.page * PAGE_SIZE + state.sel];
    return it && D.mode === "families" ? fam(it) : it;
  }

  // next member of the selected family or set; past the last, the next card
  function step(delta) {
    const it = current(), c = selectedCard();
    if (!it || !c) return;
    const n = D.mode === "families" ? it.others.length : D.mode === "sets" ? it.files.length : 0;
    const m = c._cur + delta;
    if (m >= 0 && m < n) c._setMember(m);
    else if (delta > 0) nextCard();
  }

  // after a decision: the next card, past a page's last card the next page (with
  // "not yet reviewed" the decided cards leave the list: the same page, refiltered)
  function nextCard() {
    if (state.sel < cards().length - 1) select(state.sel + 1);
    else if (state.review === "todo") { state.sel = 0; render(); }
    else if ((state.page + 1) * PAGE_SIZE < state.rows.length) go(1);
  }
  const member = (it) => Math.min(selectedCard()._cur, (D.mode === "sets" ? it.files : it.others).length - 1);

  // decide by key on the selected card (and member), then move on
  function decideKey(decision) {
    const it = current();
    if (!it) return;
    const note = (cards()[state.sel].querySelector("input.note") || {}).value;
    if (D.mode === "pairs") {
      if (FILE_DECISIONS.has(decision)) return;
      decidePair(it.file1, it.file2, decision, note);
      nextCard();
    } else if (D.mode === "sets") {
      if (!FILE_DECISIONS.has(decision)) return;
      decideFile(it.files[member(it)], decision, note);
      step(1);
    } else {
      const m = it.others[member(it)];
      if (!m) return;
      const e = edgeOf(it, m);
      if (FILE_DECISIONS.has(decision)) decideFile(m.file, decision, note);
      else if (e) decidePair(e[0], e[1], decision, note);
      else {
        message("A duplicate has the master's bytes or pixels: mark it redundant (d) or master (m).", true);
        return;
      }
      step(1);
    }
  }

  // the last decision made on this page, back to what it replaced, and its card
  // selected again; with none, the selected card's (or member's) decision cleared
  function undoKey() {
    const last = undoStack.pop();
    if (!last) return clearSelected();
    for (const [key, before] of last.changes.reverse()) {
      if (before) Decisions.set(before); else Decisions.clear(key);
    }
    if (state.page !== last.page || state.review !== "all") { state.page = last.page; render(); }
    select(last.sel);
    const c = selectedCard();
    if (c && c._setMember && last.cur != null) c._setMember(last.cur);
  }

  function clearSelected() {
    const it = current();
    if (!it) return;
    if (D.mode === "pairs") Decisions.clear(pairKey(F[it.file1].sha256, F[it.file2].sha256));
    else if (D.mode === "sets") {
      const f = F[it.files[member(it)]];
      Decisions.clear(fileKey(f.sha256, f.filename));
    } else {
      const m = it.others[member(it)];
      if (!m) return;
      const e = edgeOf(it, m);
      if (e) Decisions.clear(pairKey(F[e[0]].sha256, F[e[1]].sha256));
      Decisions.clear(fileKey(F[m.file].sha256, F[m.file].filename));
    }
  }

  const selectedCard = () => cards()[state.sel];
  const views = D.mode !== "sets";
  // [key, help, pages it works on, action]; the help line lists the page's own keys
  const KEYS = [
    ["j / k", "select", null, null],
    ["h / l", D.mode === "sets" ? "file" : "member", ["sets", "families"], null],
    ["c", "copy", ["copies", "families"], () => decideKey("copy")],
    ["x", D.page === "related" ? "not related" : "not a copy", ["copies", "related", "families"],
     () => decideKey("not_copy")],
    ["r", "related", ["copies", "related", "families"], () => decideKey("related")],
    ["m", D.page === "copies" ? "file 1 is the master (M: file 2)" : "master",
     ["copies", "sets", "families"], () => {
       const it = current();
       if (D.mode === "pairs") { if (it) decideFile(it.file1, "master"); } else decideKey("master");
     }],
    ["M", null, ["copies"], () => { const it = current(); if (it) decideFile(it.file2, "master"); }],
    ["d", "redundant", ["sets", "families"], () => decideKey("redundant")],
    ["a", "accept the family's copies and go on", ["families"], () => {
       const it = current();
       if (it) { acceptFamily(it); nextCard(); }
     }],
    ["u", "undo the last decision", null, undoKey],
    ["e", "note", ["copies", "related", "families"], () => { const n = selectedCard() && selectedCard().querySelector("input.note"); if (n) n.focus(); }],
    ["f", "flicker (aligned)", views ? null : [], () => selectedCard() && toggleFlicker(selectedCard())],
    ["b", "blend", views ? null : [], () => selectedCard() && toggleBlend(selectedCard())],
    ["s", "side by side", views ? null : [], () => selectedCard() && sideBySide(selectedCard())],
    ["n / p", "pages", null, null],
    ["/", "search", null, null],
  ].filter(([, , pages]) => !pages || pages.includes(D.page));

  function help() {
    const text = KEYS.filter(([, h]) => h).map(([k, h]) => `${k} ${h}`).join(" · ");
    document.getElementById("help").textContent =
      `keys: ${text}. Click a filename to open the original.`;
  }

  function controls() {
    const bar = document.getElementById("controls");
    const input = (id, ph, key, type) => {
      const e = el("input", { id, placeholder: ph, type: type || "text" });
      e.addEventListener("input", () => { state[key] = e.value; state.page = 0; render(); });
      return e;
    };
    const choice = (id, key, opts) => {
      const s = el("select", { id });
      for (const [v, t] of opts) s.appendChild(el("option", { value: v, text: t }));
      s.addEventListener("change", () => { state[key] = s.value; state.page = 0; render(); });
      return s;
    };
    const kinds = {
      pairs: [["any", "mirrored or not"], ["1", "mirrored"], ["0", "not mirrored"]],
      sets: [["any", "all sets"], ["identical", "byte-identical"], ["same_pixels", "same pixels"]],
      families: [["any", "any kind"], ["resize", "with a resize"],
                 ["rotate90i", "with a rotation"], ["other", "with another copy"],
                 ["identical", "with byte copies"], ["same_pixels", "with same pixels"]],
    }[D.mode];
    const sorts = D.mode === "families"
      ? [["default", "mixed first"], ["param", "larger first"], ["name", "by name"]]
      : [["default", "file order"], ["param", `by ${D.param}`], ...(D.mode === "pairs" ? [["score", "by score"]] : [])];
    const folder = input("folder", "folder…", "folder");
    folder.setAttribute("list", "folders");
    const list = el("datalist", { id: "folders" });
    // the first two levels of folders, offered once the field is used
    folder.addEventListener("focus", () => {
      if (list.childElementCount) return;
      const folders = new Set();
      for (const f of F) {
        const parts = f.filename.split("/");
        for (let d = 1; d < Math.min(parts.length, 3); d++) folders.add(parts.slice(0, d).join("/") + "/");
        if (folders.size > 2000) break;
      }
      for (const name of [...folders].sort()) list.appendChild(el("option", { value: name }));
    }, { once: true });
    bar.append(
      input("search", "search filenames…", "q"), folder, list,
      el("label", { text: ` ${D.param} ` }), input("pmin", "min", "min", "number"),
      input("pmax", "max", "max", "number"), choice("mirror", "mirror", kinds),
      choice("review", "review", [["all", "all"], ["todo", "not yet reviewed"], ["done", "reviewed"]]),
      choice("sort", "sort", sorts),
      el("button", { id: "prev", text: "◀ prev (p)", onclick: () => go(-1) }),
      el("span", { id: "pageinfo" }),
      el("button", { id: "next", text: "next (n) ▶", onclick: () => go(1) }));
  }

  document.addEventListener("keydown", (ev) => {
    if (["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName)) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    if (k === "n" || k === "ArrowRight") go(1);
    else if (k === "p" || k === "ArrowLeft") go(-1);
    else if (k === "j" || k === "ArrowDown") { select(state.sel + 1); ev.preventDefault(); }
    else if (k === "k" || k === "ArrowUp") { select(state.sel - 1); ev.preventDefault(); }
    else if ((k === "l" || k === "h") && D.mode !== "pairs") step(k === "l" ? 1 : -1);
    else if (k === "/") { document.getElementById("search").focus(); ev.preventDefault(); }
    else {
      const hit = KEYS.find(([key, , , run]) => run && key === k);
      if (hit) { hit[3](); ev.preventDefault(); }
    }
  });

  document.title = D.title;
  document.getElementById("title").textContent = D.title;
  const m = /page=(\d+)/.exec(location.hash);
  if (m) state.page = +m[1] - 1;
  controls();
  decisionBar();
  help();
  render();
  document.body.dataset.ready = "1";
})();
