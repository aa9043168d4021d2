// The dashboard's script, sent inline as it is written here (plain browser JavaScript, no build step).
// It renders the views of snapshot.ts and posts commands with the page's token; every text goes through
// textContent, never markup.
export const WATCH_SCRIPT = `
'use strict';
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var body = document.body;
  var token = body.dataset.token, readOnly = body.dataset.readOnly === 'true';
  var wanted = Number(new URLSearchParams(location.search).get('run')) || Number(body.dataset.run) || null;
  var view = null, source = null, waits = [], waitsRun = null;
  var SVG = 'http://www.w3.org/2000/svg';

  function el(tag, attrs) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function num(n) { return n === null || n === undefined ? '–' : Math.round(n).toLocaleString('en-US'); }
  function dur(sec) {
    if (sec === null || sec === undefined) return '–';
    sec = Math.round(sec);
    var h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
    return (h ? h + ' h ' : '') + (h || m ? m + ' min ' : '') + s + ' s';
  }
  function table(id, head, rows) {
    var t = $(id);
    t.replaceChildren(el('tr', null, ...head.map(function (h) { return el('th', null, h); })));
    if (!rows.length) t.append(el('tr', null, el('td', { colspan: head.length }, 'none')));
    rows.forEach(function (r) { t.append(r instanceof Node ? r : el('tr', null, ...r.map(function (c) { return el('td', null, c); }))); });
  }
  function figure(label, value, id) { return el('div', { id: id }, label, el('b', null, value)); }

  function renderRuns(runs, runId) {
    table('runs', ['run', 'migration', 'status', 'started', 'rows', 'changed', 'error'], runs.map(function (r) {
      var tr = el('tr', { 'data-run': r.id, class: r.id === runId ? 'selected' : null },
        el('td', null, r.id), el('td', null, r.migrationId), el('td', { class: 'nowrap status-' + r.status }, r.status),
        el('td', { class: 'nowrap' }, r.startedAt.slice(0, 19)), el('td', null, num(r.rowsDone) + ' / ' + num(r.rowsTotal)),
        el('td', null, num(r.rowsChanged)), el('td', null, r.errorCode || ''));
      tr.addEventListener('click', function () { select(r.id); });
      return tr;
    }));
  }

  function renderView(v) {
    var r = v.run;
    $('run-title').replaceChildren('run ' + r.id + ': ' + r.migrationId + ' ', el('span', { id: 'status', class: 'status-' + r.status }, r.status));
    var pct = r.rowsTotal ? Math.min(100, (100 * r.rowsDone) / r.rowsTotal) : r.status === 'completed' ? 100 : 0;
    var t = v.throttle;
    var throttle = r.status === 'paused' ? 'paused' : t.state === 'throttled' ? 'throttled: ' + t.reasons.join('; ') : 'clear';
    if (t.tuned) throttle += ' (tuned ' + JSON.stringify(t.tuned.settings) + ')';
    $('figures').replaceChildren(
      figure('rows done / total', num(r.rowsDone) + ' / ' + num(r.rowsTotal) + ' (' + pct.toFixed(1) + ' %)', 'rows'),
      figure('rows/s', r.status === 'running' || r.status === 'paused' ? num(v.rowsPerSec) : '–', 'rate'),
      figure('ETA', r.status === 'running' ? dur(v.etaSec) : '–', 'eta'),
      figure('lock waiters', v.lockWaiters === null ? 'n/a (PGlite)' : v.lockWaiters, 'lock-waiters'),
      figure('throttle', throttle, 'throttle'));
    $('progress').style.width = pct + '%';
    if (r.error) $('message').textContent = (r.error.code || '') + ': ' + r.error.message + (r.error.fix ? ' (' + r.error.fix + ')' : '');
    if (waitsRun !== r.id) { waits = []; waitsRun = r.id; }
    if (v.lockWaiters !== null) waits.push({ at: v.now, n: v.lockWaiters });
    if (waits.length > 120) waits.shift();
    renderChart(v.batches);
    table('steps', ['step', 'kind', 'status', 'rows done / total', 'changed'], v.steps.map(function (s) {
      return [s.name, s.kind, s.status, num(s.rowsDone) + ' / ' + num(s.rowsTotal), num(s.rowsChanged)];
    }));
    table('pending', ['request', 'command', 'settings', 'asked at'], v.pending.map(function (p) {
      return [p.id, p.command, JSON.stringify(p.settings), p.requestedAt.slice(0, 19)];
    }));
    table('findings', ['at', 'source', 'name', 'result', 'rows', 'message'], v.findings.map(function (f) {
      return [f.at.slice(0, 19), f.source, f.name, f.result, num(f.count), f.message || ''];
    }));
    table('events', ['at', 'event', 'data'], v.events.map(function (e) {
      var d = JSON.stringify(e.data);
      return el('tr', { 'data-type': e.type }, el('td', { class: 'nowrap' }, e.at.slice(11, 23)), el('td', { class: 'nowrap' }, e.type), el('td', null, d.length > 240 ? d.slice(0, 240) + '…' : d));
    }));
    if (!readOnly) {
      var active = r.status === 'running' || r.status === 'paused';
      var pausing = v.pending.some(function (p) { return p.command === 'pause'; });
      $('pause').disabled = r.status !== 'running' || pausing;
      $('resume').disabled = r.status !== 'paused' && !pausing;
      $('abort').disabled = $('tune').disabled = !active;
    }
  }

  // batch durations as bars (the newest 120 batches), lock waiters sampled at every view as a line
  function renderChart(batches) {
    var W = 760, H = 200, top = 14, left = 44, bottom = H - 20, width = W - left - 44;
    var s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: '100%', role: 'img', 'aria-label': 'batch durations and lock waiters',
      'data-batches': batches.length, 'data-last-batch': batches.length ? batches[batches.length - 1].stepNo + ':' + batches[batches.length - 1].batchNo : '' });
    var maxMs = Math.max(1, ...batches.map(function (b) { return b.durationMs; }));
    var step = width / Math.max(batches.length, 60);
    batches.forEach(function (b, i) {
      var h = ((bottom - top) * b.durationMs) / maxMs;
      var rect = svg('rect', { class: 'bar', x: (left + i * step).toFixed(1), y: (bottom - h).toFixed(1), width: Math.max(1, step - 1).toFixed(1), height: h.toFixed(1) });
      rect.append(svg('title', {}));
      rect.firstChild.textContent = 'batch ' + b.batchNo + ': ' + Math.round(b.durationMs) + ' ms, ' + b.rows + ' rows';
      s.append(rect);
    });
    var maxN = Math.max(1, ...waits.map(function (w) { return w.n; }));
    if (waits.length) {
      var t0 = waits[0].at, span = Math.max(1, waits[waits.length - 1].at - t0);
      var pts = waits.map(function (w) { return (left + ((w.at - t0) / span) * width).toFixed(1) + ',' + (bottom - ((bottom - top) * w.n) / maxN).toFixed(1); });
      s.append(svg('polyline', { class: 'waits', points: pts.join(' ') }));
    }
    s.append(svg('line', { class: 'axis', x1: left, y1: bottom, x2: left + width, y2: bottom }));
    [[4, 11, Math.round(maxMs) + ' ms'], [4, bottom, '0'], [W - 2, 11, maxN + ' waiting', 'end'], [left, H - 4, 'batch duration (bars, newest ' + batches.length + ')   lock waiters (line)']]
      .forEach(function (l) { var x = svg('text', { x: l[0], y: l[1], 'text-anchor': l[3] || 'start' }); x.textContent = l[2]; s.append(x); });
    $('chart').replaceChildren(s);
  }

  function connect() {
    if (source) source.close();
    source = new EventSource('/api/stream' + (wanted ? '?run=' + wanted : ''));
    source.addEventListener('snapshot', function (m) {
      var d = JSON.parse(m.data);
      $('conn').textContent = 'live, ' + new Date().toLocaleTimeString('en-GB');
      renderRuns(d.runs, d.runId);
      view = d.view;
      if (view) renderView(view);
    });
    source.addEventListener('problem', function (m) { $('conn').textContent = 'database: ' + JSON.parse(m.data).message; });
    source.onerror = function () { $('conn').textContent = 'connection lost, retrying…'; };
  }
  function select(id) {
    wanted = id;
    history.replaceState(null, '', '?run=' + id);
    connect();
  }

  async function act(command, settings, question) {
    if (!view || !confirm(question)) return;
    var m = $('message');
    try {
      var res = await fetch('/api/runs/' + view.run.id + '/control', {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-belay-token': token }, body: JSON.stringify({ command: command, settings: settings }),
      });
      var j = await res.json();
      m.className = res.ok ? '' : 'error';
      m.textContent = res.ok ? j.said : (j.error.code || '') + ': ' + j.error.message + (j.error.fix ? ' (' + j.error.fix + ')' : '');
    } catch (e) {
      m.className = 'error';
      m.textContent = 'the command was not sent: ' + e.message;
    }
  }
  if (!readOnly) {
    var name = function () { return 'run ' + view.run.id + ' (' + view.run.migrationId + ')'; };
    $('pause').onclick = function () { act('pause', {}, 'Pause ' + name() + ' after its current batch? It holds no lock while paused.'); };
    $('resume').onclick = function () { act('resume', {}, 'Resume ' + name() + '?'); };
    $('abort').onclick = function () {
      var rb = $('rollback').checked;
      act(rb ? 'abort-rollback' : 'abort', {}, rb ? 'Abort ' + name() + ' and roll back every committed batch?' : 'Abort ' + name() + ' after its current batch? It stays resumable with belay apply.');
    };
    $('tune').onclick = function () {
      var ms = Number($('target').value);
      if (!Number.isInteger(ms) || ms < 1 || ms > 60000) { $('message').className = 'error'; $('message').textContent = 'the batch target is a whole number of ms from 1 to 60000'; return; }
      act('tune', { targetMs: ms }, 'Set the batch target of ' + name() + ' to ' + ms + ' ms?');
    };
  }
  connect();
})();
`;
