// scripts/bench.sh's chart row: Debian's chromium renders the link chart of a
// large neighbourhood as the web UI does (fetch the chart, cytoscape with the
// fcose layout, draw), timed in the page. Prints one JSON line.
// Environment: BASE_URL, USER_NAME, PASSWORD, CASE, FROM.
import { chromium } from "playwright-core";

const env = process.env;
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
  await page.goto(env.BASE_URL + "/");
  const r = await page.evaluate(async ({ name, password, kase, from }) => {
    await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name, password }) });
    if (!window.cytoscape.registeredFcose) { cytoscape.use(cytoscapeFcose); window.cytoscape.registeredFcose = true; }
    const box = document.createElement("div");
    box.style.width = "1200px"; box.style.height = "800px";
    document.body.appendChild(box);
    const t0 = performance.now();
    const res = await fetch(`/api/cases/${encodeURIComponent(kase)}/chart?from=${encodeURIComponent(from)}&depth=1&cap=1000`);
    const c = await res.json();
    const t1 = performance.now();
    const cy = cytoscape({ container: box, elements: [
      ...c.nodes.map((n) => ({ group: "nodes", data: { id: n.id, label: n.label, type: n.type } })),
      ...c.edges.map((e) => ({ group: "edges", data: { id: e.link || (e.from + ">" + e.to), source: e.from, target: e.to, label: e.label } })),
    ] });
    await new Promise((done) => {
      // As the web UI lays out a chart over 300 records.
      const l = cy.layout({ name: "fcose", animate: false, randomize: true, quality: c.nodes.length > 300 ? "draft" : "default" });
      l.one("layoutstop", done);
      l.run();
    });
    await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
    const t2 = performance.now();
    return { nodes: c.nodes.length, edges: c.edges.length, fetch_ms: t1 - t0, ms: t2 - t0 };
  }, { name: env.USER_NAME, password: env.PASSWORD, kase: env.CASE, from: env.FROM });
  console.log(JSON.stringify(r));
} finally {
  await browser.close();
}
