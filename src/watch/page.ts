// The dashboard's one page: markup, style and a small script, all inline (no build step, nothing fetched
// from elsewhere). The script renders the views the server streams (server-sent events) with textContent
// and createElement only: run data (migration ids, messages, event fields) never becomes markup.
import { WATCH_SCRIPT } from './page-script.ts';

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function watchPage(o: { nonce: string; token: string; readOnly: boolean; runId: number | undefined; label: string }): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>belay watch</title><link rel="icon" href="data:,">
<style nonce="${o.nonce}">${STYLE}</style></head>
<body data-token="${esc(o.token)}" data-read-only="${o.readOnly}" data-run="${o.runId ?? ''}">
<header><h1>belay watch</h1><span id="db">${esc(o.label)}</span>${o.readOnly ? '<span class="badge">read-only</span>' : ''}<span id="conn">connecting…</span></header>
<main>
<section id="runs-section"><h2>Runs</h2><table id="runs"></table></section>
<section id="run-section"><h2 id="run-title">no run yet</h2>
<div id="figures"></div><div class="bar-track"><div id="progress"></div></div>
${
  o.readOnly
    ? ''
    : `<div id="controls"><button id="pause">Pause</button><button id="resume">Resume</button>
<button id="abort">Abort</button><label><input type="checkbox" id="rollback"> and roll back</label>
<label>batch target <input id="target" type="number" min="1" max="60000" step="1"> ms</label><button id="tune">Set target</button></div>`
}
<p id="message" role="status"></p>
<div id="chart"></div>
<h3>Steps</h3><table id="steps"></table>
<h3>Commands not taken yet</h3><table id="pending"></table>
<h3>Last findings</h3><table id="findings"></table>
<h3>Last events</h3><table id="events"></table>
</section>

</main>
<script nonce="${o.nonce}">${WATCH_SCRIPT}</script>
</body></html>`;
}

const STYLE = `body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{display:flex;gap:1em;align-items:baseline;padding:.6em 1em;background:#263238;color:#fff}
header h1{font-size:1.2em;margin:0}#conn{margin-left:auto;opacity:.8}.badge{background:#f9a825;color:#000;padding:0 .4em;border-radius:3px}
main{display:grid;gap:1em;padding:1em;max-width:1100px}
section{background:#fff;border:1px solid #ddd;border-radius:4px;padding:.6em 1em;overflow:hidden}
#runs-section{max-height:30vh;overflow-y:auto}th,td.nowrap{white-space:nowrap}
h2{font-size:1.1em;margin:.2em 0 .6em}h3{font-size:1em;margin:1em 0 .3em}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{text-align:left;padding:2px 6px;border-bottom:1px solid #eee;vertical-align:top;overflow-wrap:anywhere}
#runs tr[data-run]{cursor:pointer}#runs tr.selected{background:#e3f2fd}
#figures{display:flex;flex-wrap:wrap;gap:.4em 1.6em}#figures b{display:block;font-size:1.3em}
.bar-track{height:8px;background:#eee;border-radius:4px;margin:.6em 0}#progress{height:8px;background:#43a047;border-radius:4px;width:0}
#controls{display:flex;flex-wrap:wrap;gap:.5em;align-items:center;margin:.6em 0}#target{width:6em}
#message.error{color:#b71c1c}.status-running{color:#1565c0}.status-paused{color:#ef6c00}.status-failed{color:#b71c1c}.status-completed{color:#2e7d32}
svg text{font-size:11px;fill:#555}svg .bar{fill:#5c6bc0}svg .waits{fill:none;stroke:#e53935;stroke-width:1.5}svg .axis{stroke:#bbb}`;
