// The web UI in a real browser: Debian's chromium, headless, driven by
// playwright-core. Started by the Rust test `browser::the_web_ui_end_to_end`,
// which makes the nodes and accounts and passes them in the environment:
//   BASE_URL      the --http address of node A (uk-east)
//   CASESYNC_BIN  the casesync binary; A_DIR, B_DIR the two data dirs
//   B_PEER        B's PeerId; PASSWORD every account's password
//   SHOTS         where to write the screenshots
// Each step asserts; the first failure ends the run non-zero with its reason.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = process.env;
const BASE = env.BASE_URL;
const PW = env.PASSWORD;

function cs(dir, ...args) {
  return execFileSync(env.CASESYNC_BIN, ["--data-dir", dir, ...args], {
    env: { ...env, CASESYNC_OPERATOR: "test" },
    encoding: "utf8",
  }).trim();
}

async function login(browser, name) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => { console.log("PAGE ERROR:", e.message); });
  page.on("console", (m) => { if (m.type() === "error") console.log("console error:", m.text()); });
  await page.goto(BASE + "/");
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password", { exact: true }).fill(PW);
  await page.getByRole("button", { name: "Log in" }).click();
  try {
    await page.locator("#cases-view").waitFor({ state: "visible", timeout: 15000 });
  } catch (e) {
    throw new Error(`${name} did not get in: ${await page.locator("#message").textContent()} (${e.message})`);
  }
  return page;
}

async function apiJson(page, path) {
  return page.evaluate(async (p) => {
    const r = await fetch(p, { headers: { Accept: "application/json" } });
    return { status: r.status, body: await r.json() };
  }, path);
}

async function addRecord(page, type, fields) {
  await page.locator("#add-type").selectOption(type);
  const rows = page.locator("#add-fields .field-row");
  const required = await rows.count();
  const entries = Object.entries(fields);
  for (let i = 0; i < entries.length; i++) {
    if (i >= required) await page.getByRole("button", { name: "Another field" }).click();
    const row = rows.nth(i);
    if (i >= required) await row.locator("input").nth(0).fill(entries[i][0]);
    await row.locator("input").nth(1).fill(entries[i][1]);
  }
  await page.getByRole("button", { name: "Add record" }).click();
  await page.locator("#message", { hasText: "Record added." }).waitFor();
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  // A supervisor logs in, creates a case, adds a person, a phone and a link.
  const sam = await login(browser, "sam");
  await sam.getByLabel("Title").fill("Op Lantern");
  await sam.getByRole("button", { name: "Create" }).click();
  await sam.locator("#case-view").waitFor({ state: "visible" });
  assert.equal(await sam.locator("#case-title").textContent(), "Op Lantern");
  const caseId = decodeURIComponent(new URL(sam.url()).hash.split("/")[2]);
  // The case's policy, set from this lead node, binds every member node.
  await sam.locator("#case-members summary").click();
  await sam.getByLabel("Two people to export a bundle").check();
  await sam.getByLabel("A record's originator may ask for its erasure").check();
  await sam.getByRole("button", { name: "Set policy" }).click();
  await sam.locator("#case-policy", { hasText: "two people at every member node for bundle-export; originators may ask" }).waitFor();
  await sam.locator("#case-members summary").click();

  await addRecord(sam, "person", { name: "Marin Dobre", dob: "1984-03-02" });
  await addRecord(sam, "phone", { number: "+40 722 123 456" });
  const listed = await apiJson(sam, `/api/cases/${caseId}/records?limit=10`);
  assert.equal(listed.status, 200);
  const id = (t) => listed.body.records.find((r) => r.type === t).id;
  await addRecord(sam, "link", { from: id("person"), to: id("phone"), link_type: "uses" });
  // The same validation message as the CLI.
  await sam.locator("#add-type").selectOption("person");
  await sam.locator("#add-fields .field-row input").nth(1).fill("X");
  await sam.getByRole("button", { name: "Another field" }).click();
  await sam.locator("#add-fields .field-row").nth(1).locator("input").nth(0).fill("dob");
  await sam.locator("#add-fields .field-row").nth(1).locator("input").nth(1).fill("1984-13-40");
  await sam.getByRole("button", { name: "Add record" }).click();
  await sam.waitForFunction(() => document.getElementById("message").textContent.length > 0);
  const refusal = await sam.locator("#message").textContent();
  const cli = (() => {
    try { cs(env.A_DIR, "record", "add", caseId, "--type", "person", "--field", "name=X", "--field", "dob=1984-13-40"); return ""; }
    catch (e) { return String(e.stderr); }
  })();
  assert.ok(refusal && cli.includes(refusal), `UI said ${JSON.stringify(refusal)}, CLI said ${JSON.stringify(cli)}`);
  await sam.locator("#records tbody tr").nth(2).waitFor();
  assert.equal(await sam.locator("#records tbody tr").count(), 3);

  // The record page: fields, handling and history.
  await sam.locator("#records a", { hasText: "Marin Dobre" }).click();
  await sam.locator("#record-view").waitFor({ state: "visible" });
  await sam.locator("#history tbody tr").first().waitFor();
  assert.match(await sam.locator("#history").textContent(), /uk-east \(Unit uk-east\)/);
  assert.match(await sam.locator("#record-handling").textContent(), /every member of the case/);
  // This node made it: where it went, and its regrade (the originator's).
  await sam.locator("#provenance tbody", { hasText: "originator" }).waitFor();
  assert.match(await sam.locator("#record-handling").textContent(), /H0: law-enforcement use only/);
  await sam.locator("#regrade-handling").fill("H1");
  await sam.locator("#regrade-reason").fill("source protection");
  await sam.getByRole("button", { name: "Regrade" }).click();
  await sam.locator("#record-handling", { hasText: "H1: not for judicial use" }).waitFor();
  await sam.locator("#history tbody", { hasText: "handling H1" }).waitFor();

  // The chart, from the person; expanded from the phone.
  await sam.getByRole("link", { name: "Chart from this record" }).click();
  await sam.locator("#chart-view").waitFor({ state: "visible" });
  await sam.locator("#chart-list li").nth(1).waitFor();
  assert.equal(await sam.locator("#chart-list li").count(), 2);
  await sam.getByRole("button", { name: "expand +40 722 123 456" }).click();
  await sam.locator("#chart-note", { hasText: "records on the chart" }).waitFor();
  const drawn = await sam.evaluate(() => document.querySelectorAll("#chart canvas").length);
  assert.ok(drawn > 0, "cytoscape drew no canvas");
  await sam.locator("#path-from").selectOption({ label: "+40 722 123 456" });
  await sam.locator("#path-to").selectOption({ label: "Marin Dobre" });
  await sam.getByRole("button", { name: "Find path" }).click();
  await sam.locator("#chart-note", { hasText: "Path: +40 722 123 456 → Marin Dobre" }).waitFor();
  await sam.screenshot({ path: env.SHOTS + "/chart.png", fullPage: true });

  // Records imported from a file, all or nothing.
  await sam.goto(BASE + "/#/case/" + encodeURIComponent(caseId));
  await sam.locator("#case-view").waitFor({ state: "visible" });
  await sam.locator("#import-file").setInputFiles({
    name: "people.jsonl", mimeType: "text/plain",
    buffer: Buffer.from('{"type": "person", "fields": {"name": "Elena Ilie"}}\n{"type": "vehicle", "fields": {"registration": "B 123 ABC"}}\n'),
  });
  await sam.getByRole("button", { name: "Import" }).click();
  await sam.locator("#message", { hasText: "Imported 2 records." }).waitFor();

  // The supervisor adds the partner agency's node to the case; its record
  // then arrives live on the open case page, without a reload.
  await sam.locator("summary", { hasText: "Member agencies" }).click();
  await sam.getByLabel("Add a member node (PeerId or card)").fill(env.B_PEER);
  await sam.getByRole("button", { name: "Add member" }).click();
  await sam.locator("#message", { hasText: "Added ro-police as contributor." }).waitFor();
  await sam.locator("#member-table tbody", { hasText: "ro-police" }).waitFor();
  await sam.screenshot({ path: env.SHOTS + "/case-page.png", fullPage: true });
  await sam.locator("#records tbody tr").nth(2).waitFor();
  await sam.locator("#live").waitFor({ state: "visible" });
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    try { cs(env.B_DIR, "record", "show", id("person")); break; } catch { await new Promise((r) => setTimeout(r, 300)); }
  }
  cs(env.B_DIR, "record", "add", caseId, "--type", "note", "--field", "text=Seen at Otopeni, 14:20");
  await sam.locator("#records tbody", { hasText: "Seen at Otopeni" }).waitFor({ timeout: 60000 });

  // Search from the box on every page finds the phone in another format, in
  // two cases; the record page says where else it is.
  await sam.goto(BASE + "/#/cases");
  await sam.locator("#cases-view").waitFor({ state: "visible" });
  await sam.getByLabel("Title").fill("Op Ledger");
  await sam.getByRole("button", { name: "Create" }).click();
  await sam.locator("#case-title", { hasText: "Op Ledger" }).waitFor();
  await addRecord(sam, "phone", { number: "0040722123456" });
  await sam.getByRole("searchbox", { name: "Search" }).fill("+40 (722) 123-456");
  await sam.getByRole("button", { name: "Search", exact: true }).click();
  await sam.locator("#search-note", { hasText: "2 result(s)" }).waitFor();
  await sam.locator("#search-table a", { hasText: "0040722123456" }).click();
  await sam.locator("#record-also", { hasText: "Also in: case Op Lantern" }).waitFor();
  // An evidence file: the record page offers the download and shows an
  // image in the page (served by the node, each piece checked).
  const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==", "base64");
  const pngPath = join(mkdtempSync(join(tmpdir(), "casesync-ui-")), "cctv-still.png");
  writeFileSync(pngPath, png);
  const still = cs(env.A_DIR, "evidence", "add", caseId, pngPath);
  await sam.goto(BASE + "/#/record/" + encodeURIComponent(still));
  await sam.locator("#file-download", { hasText: "Download cctv-still.png" }).waitFor();
  await sam.waitForFunction(() => {
    const img = document.getElementById("file-preview");
    return img && img.complete && img.naturalWidth === 2;
  });
  await sam.goto(BASE + "/#/case/" + encodeURIComponent(caseId));
  await sam.locator("#case-title", { hasText: "Op Lantern" }).waitFor();
  // Still open from adding the member (the page keeps the section's state).
  await sam.evaluate(() => { document.getElementById("case-members").open = true; });

  // An analyst not assigned sees nothing of the case, in the UI or the API.
  const bob = await login(browser, "bob");
  assert.match(await bob.locator("#case-table").textContent(), /No case is assigned to you yet/);
  assert.equal((await apiJson(bob, `/api/cases/${caseId}`)).status, 403);
  assert.equal((await apiJson(bob, `/api/cases/${caseId}/records`)).status, 403);

  // Assigned by the supervisor, an analyst works on it; disabled, she is out.
  await sam.getByLabel("Assign an analyst to this case").fill("ana");
  await sam.getByRole("button", { name: "Assign" }).click();
  await sam.locator("#message", { hasText: "Assigned ana." }).waitFor();
  const ana = await login(browser, "ana");
  await ana.locator("#case-table a", { hasText: "Op Lantern" }).click();
  await ana.locator("#records a", { hasText: "Marin Dobre" }).click();
  await ana.locator("#record-view").waitFor({ state: "visible" });
  cs(env.A_DIR, "user", "disable", "ana");
  await ana.getByRole("link", { name: "Cases", exact: true }).click();
  await ana.locator("#login-view").waitFor({ state: "visible" });

  // Four eyes: a request filed at the shell waits for the supervisor on
  // the approvals page, who denies it there with a reason.
  cs(env.A_DIR, "approvals", "policy", "--require", "erase");
  let filed = "";
  try { cs(env.A_DIR, "--operator", "dpo", "record", "erase", id("phone"), "--reason", "duplicate"); }
  catch (e) { filed = String(e.stderr); }
  const req = (filed.match(/request (\d+) is filed/) || [])[1];
  assert.ok(req, `no request filed: ${filed}`);
  await sam.getByRole("link", { name: "Approvals", exact: true }).click();
  await sam.locator("#approvals-table tbody", { hasText: "dpo" }).waitFor();
  await sam.getByLabel("reason to deny request " + req).fill("keep it: still evidence");
  await sam.getByRole("button", { name: "deny request " + req }).click();
  await sam.locator("#approvals-done", { hasText: "Request " + req + " denied." }).waitFor();
  await sam.locator("#approvals-table tbody", { hasText: "denied by sam" }).waitFor();
  cs(env.A_DIR, "approvals", "policy", "--require", "none");

  // Erasure from the record page of a lead's node: the erasure page shows
  // each member and this node's receipt. Review: nothing is due yet.
  sam.on("dialog", (d) => d.accept());
  await sam.goto(BASE + "/#/record/" + encodeURIComponent(id("phone")));
  await sam.locator("#record-view").waitFor({ state: "visible" });
  await sam.getByLabel("Erase this record from every member: reason").fill("duplicate of the Op Ledger phone");
  await sam.getByRole("button", { name: "Erase record" }).click();
  await sam.locator("#erasure-view").waitFor({ state: "visible" });
  await sam.locator("#erasure-table tbody tr", { hasText: "uk-east" }).filter({ hasText: "erased" }).waitFor();
  assert.match(await sam.locator("#erasure-summary").textContent(), /duplicate of the Op Ledger phone/);
  await sam.getByRole("link", { name: "Review", exact: true }).click();
  await sam.locator("#review-table tbody", { hasText: "No record is due for review." }).waitFor();
  // A case closed, then archived: out of the working list.
  await sam.getByRole("link", { name: "Cases", exact: true }).click();
  await sam.locator("#case-table a", { hasText: "Op Ledger" }).click();
  await sam.locator("#case-title", { hasText: "Op Ledger" }).waitFor();
  await sam.locator("#case-closing summary").click();
  await sam.getByRole("button", { name: /Close the case/ }).click();
  await sam.locator("#case-state", { hasText: "Closed" }).waitFor();
  await sam.getByRole("button", { name: "Archive here" }).click();
  await sam.locator("#case-state", { hasText: "archived on this node" }).waitFor();
  await sam.getByRole("link", { name: "Cases", exact: true }).click();
  await sam.locator("#case-table a", { hasText: "Op Lantern" }).waitFor();
  assert.ok(!/Op Ledger/.test(await sam.locator("#case-table").textContent()), "an archived case left the list");

  // The audit page shows the person's consultations.
  await sam.getByRole("link", { name: "Audit", exact: true }).click();
  await sam.getByLabel("By", { exact: true }).fill("ana");
  await sam.getByRole("button", { name: "Show" }).click();
  await sam.locator("#audit-table tbody", { hasText: "record.show" }).waitFor();
  const audit = await sam.locator("#audit-table tbody").textContent();
  assert.match(audit, /record\.list/);
  assert.ok(!/\bsam\b/.test(audit), "filtered to ana");
  // An admin manages accounts and sees the federation, and no case.
  const ada = await login(browser, "ada");
  assert.match(await ada.locator("#case-table").textContent(), /No case yet/);
  await ada.getByRole("link", { name: "Accounts and trust" }).click();
  await ada.locator("#user-table tbody", { hasText: "bob" }).waitFor();
  await ada.getByLabel("New account").fill("carol");
  await ada.getByRole("button", { name: "Add account" }).click();
  await ada.locator("#user-otp", { hasText: "One-time password for carol" }).waitFor();
  await ada.locator("#trust-table tbody", { hasText: "ro-police" }).waitFor();
  await ada.locator("#trust-policy", { hasText: "One admin node enrolls and revokes." }).waitFor();
  // One admin node cannot ask for two: the refusal says what to do.
  await ada.getByRole("button", { name: "Require two admin nodes" }).click();
  await ada.locator("#message", { hasText: "enroll a second admin first" }).waitFor();
  await ada.screenshot({ path: env.SHOTS + "/admin.png", fullPage: true });
  console.log("browser: every step passed");
} finally {
  await browser.close();
}
