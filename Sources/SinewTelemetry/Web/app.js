// The Sinew dashboard: one WebSocket to the running robot (hello, frames at 30 Hz, health at 2 Hz, the event
// list), plots, the 3D view, tables, and the e-stop and recover buttons. The page's token travels as the cookie
// the server set when the page was opened with ?token=…
'use strict';

const $ = id => document.getElementById(id);
const dashboard = window.sinewDashboard = {
  framesReceived: 0, healthReceived: 0, state: 'unknown', lastFrame: null, hello: null, acks: [], errors: [],
  connected: false, viewLoaded: false, viewError: null,
};
let selected = 0;
let charts = null;
let view = null;
let socket = null;
let lastCommand = [], lastCommandT = NaN;
// For tests and scripts: samples the shown position plot took in, and 3D frames drawn.
dashboard.plotSamples = () => (charts && charts.history ? charts.history[selected].position.samplesPushed : 0);
dashboard.viewDraws = () => (view ? view.drawn : 0);

// Keep the token out of the address bar, history and screenshots once the cookie holds it.
if (location.search.includes('token=')) history.replaceState(null, '', location.pathname);

function text(id, value) { const e = $(id); if (e && e.textContent !== String(value)) e.textContent = value; }
function fixed(v, digits) { return Number.isFinite(v) ? v.toFixed(digits) : '–'; }

function setupCharts(hello) {
  charts = {
    position: new StripChart($('plot-position'), [
      { label: 'measured', color: '#4c9be8', width: 2 }, { label: 'command', color: '#f0b429', dash: [6, 4] },
      { label: 'target', color: '#b48ead', dash: [2, 3] }]),
    velocity: new StripChart($('plot-velocity'), [
      { label: 'measured', color: '#4c9be8', width: 2 }, { label: 'command (its rate of change)', color: '#f0b429', dash: [6, 4] }]),
    effort: new StripChart($('plot-effort'), [{ label: 'measured', color: '#4c9be8', width: 2 }]),
  };
  // Every joint's history is kept, so switching tabs shows the past at once.
  charts.history = hello.joints.map(() => ({
    position: new StripChart($('plot-position'), charts.position.series),
    velocity: new StripChart($('plot-velocity'), charts.velocity.series),
    effort: new StripChart($('plot-effort'), charts.effort.series),
  }));
  const tabs = $('joint-tabs');
  tabs.textContent = '';
  hello.joints.forEach((joint, j) => {
    const b = document.createElement('button');
    b.textContent = joint.name;
    b.addEventListener('click', () => { selected = j; updateTabs(); plotsDirty = true; });
    tabs.appendChild(b);
  });
  updateTabs();
}

function updateTabs() {
  [...$('joint-tabs').children].forEach((b, j) => b.classList.toggle('selected', j === selected));
  if (!dashboard.hello) return;
  const joint = dashboard.hello.joints[selected];
  charts.history[selected].position.limits = [joint.min, joint.max];
  charts.history[selected].velocity.limits = [-joint.velocity_limit, joint.velocity_limit];
  charts.history[selected].effort.limits = [-joint.effort_limit, joint.effort_limit];
}

function table(id, header, rows) {
  const t = $(id);
  let html = '<tr>' + header.map(h => `<th>${h}</th>`).join('') + '</tr>';
  for (const row of rows) html += '<tr>' + row.map(c => `<td${c.bad ? ' class="bad"' : ''}>${c.v ?? c}</td>`).join('') + '</tr>';
  if (t.innerHTML !== html) t.innerHTML = html;
}

function escapeHTML(s) {
  return String(s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function onHello(hello) {
  dashboard.hello = hello;
  text('robot-name', `${hello.robot} · ${hello.joints.length} joints · ${hello.rate_hz} Hz`);
  document.title = `Sinew · ${hello.robot}`;
  setupCharts(hello);
  if (!view) {
    view = new RobotView($('view3d'), $('view-note'));
    view.load('robot.json').then(() => { dashboard.viewLoaded = true; })
      .catch(e => { dashboard.viewError = String(e); $('view-note').textContent = String(e); });
  }
}

function onFrame(f) {
  dashboard.framesReceived++;
  dashboard.lastFrame = f;
  dashboard.state = f.state;
  const stateBox = $('state');
  stateBox.className = 'state state-' + f.state;
  text('state', f.state === 'safe' && f.cause ? `safe · ${f.cause}` : f.state);
  text('time', fixed(f.t, 1));
  text('rate', fixed(f.rate_hz, 1));
  text('bus-errors', f.bus_errors);
  if (!dashboard.hello) return;
  // Commanded velocity: the rate of change of the guarded position command between frames.
  const dt = f.t - lastCommandT;
  f.position.forEach((_, j) => {
    const h = charts.history[j];
    const commandVelocity = dt > 0 && lastCommand.length ? (f.command[j] - lastCommand[j]) / dt : NaN;
    h.position.push(f.t, [f.position[j], f.command[j], f.target[j]]);
    h.velocity.push(f.t, [f.velocity[j], commandVelocity]);
    h.effort.push(f.t, [f.effort[j]]);
  });
  lastCommand = f.command.slice();
  lastCommandT = f.t;
  if (view) view.setPositions(dashboard.hello.joints.map(j => j.name), f.position);
  plotsDirty = true;
  table('joint-table', ['joint', 'position rad', 'command rad', 'velocity rad/s', 'effort N·m'],
    dashboard.hello.joints.map((joint, j) => [escapeHTML(joint.name),
      { v: fixed(f.position[j], 3), bad: f.position[j] < joint.min || f.position[j] > joint.max },
      fixed(f.command[j], 3), fixed(f.velocity[j], 3), fixed(f.effort[j], 3)]));
}

function onHealth(m) {
  dashboard.healthReceived++;
  text('overruns', m.overruns);
  text('wake-p99', fixed(m.wake_us[1], 0));
  text('wake-figures', `${fixed(m.wake_us[0], 0)} / ${fixed(m.wake_us[1], 0)} / ${fixed(m.wake_us[2], 0)} µs`);
  drawHistogram($('latency'), m.latency_edges_us, m.latency_counts, 'µs');
  if (dashboard.hello) {
    table('stage-table', ['stage'].concat(dashboard.hello.stages), [['p99 µs'].concat(m.stage_p99_us.map(v => fixed(v, 1)))]);
  }
  table('bus-table', ['bus', 'transactions', 'errors', 'timeouts', 'checksum', 'retries'],
    m.buses.map(b => [escapeHTML(b.name), b.transactions, { v: b.errors, bad: b.errors > 0 }, b.timeouts,
      b.checksum_errors, b.retries]));
  table('servo-table', ['servo', 'joint', '°C', 'V', 'A', 'error flags', 'errors'],
    m.servos.map(s => [`${escapeHTML(s.bus)}/${s.id}`, escapeHTML(s.joint), fixed(s.temperature_c, 0),
      fixed(s.voltage_v, 1), fixed(s.current_a, 2),
      { v: s.error_flags ? '0x' + s.error_flags.toString(16) : '–', bad: s.error_flags !== 0 },
      { v: s.errors, bad: s.errors > 0 }]));
}

function onEvents(m) {
  text('event-count', m.count ? `(${m.count})` : '(none)');
  const log = $('event-log');
  const html = m.events.map(e => `<li>${fixed(e.t, 3)} s · <b>${escapeHTML(e.cause)}</b>` +
    `${e.joint ? ' · ' + escapeHTML(e.joint) : ''}${e.detail ? ' · ' + escapeHTML(e.detail) : ''}` +
    ` — ${escapeHTML(e.description)}</li>`).join('');
  if (log.innerHTML !== html) log.innerHTML = html;
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  socket = new WebSocket(scheme + location.host + '/ws');
  socket.onopen = () => {
    dashboard.connected = true;
    $('connection').className = 'connection';
    text('connection', 'connected to ' + location.host);
  };
  socket.onmessage = e => {
    let m;
    try { m = JSON.parse(e.data); } catch (err) { return; }
    if (m.type === 'hello') onHello(m);
    else if (m.type === 'frame') onFrame(m);
    else if (m.type === 'health') onHealth(m);
    else if (m.type === 'events') onEvents(m);
    else if (m.type === 'ack') dashboard.acks.push(m.command);
    else if (m.type === 'error') { dashboard.errors.push(m.message); text('connection', m.message); }
  };
  socket.onclose = () => {
    dashboard.connected = false;
    $('connection').className = 'connection lost';
    text('connection', 'connection lost: the run ended, or the network is down — retrying');
    setTimeout(connect, 1000);
  };
}

function send(command) {
  if (socket && socket.readyState === WebSocket.OPEN) { socket.send(command); return; }
  // Without the socket, the same request over HTTP (the cookie carries the token).
  fetch('api/' + command, { method: 'POST', credentials: 'same-origin' }).catch(() => {});
}

$('estop').addEventListener('click', () => send('estop'));
$('recover').addEventListener('click', () => send('recover'));
window.addEventListener('keydown', e => { if (e.key === 'Escape') send('estop'); });

// Drawn when something new arrived (frames come at 30 Hz) or the view was turned, not at the display's 60 Hz:
// the browser's work is halved, which matters when it runs on the robot's own machine.
let plotsDirty = true, lastViewDraw = 0;
function render(now) {
  if (charts && dashboard.hello && plotsDirty) {
    const h = charts.history[selected];
    h.position.draw(); h.velocity.draw(); h.effort.draw();
    plotsDirty = false;
  }
  if (view && (view.dirty || now - lastViewDraw > 1000) && now - lastViewDraw > 40) {
    view.draw();
    view.dirty = false;
    lastViewDraw = now;
  }
  requestAnimationFrame(render);
}

connect();
requestAnimationFrame(render);
