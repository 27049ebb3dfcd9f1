// The robot in 3D from its URDF's visual geometry (boxes, cylinders, spheres, STL/OBJ/DAE meshes the robot's
// machine has), posed by the streamed joint positions. Hand-written on a 2D canvas (flat-shaded triangles sorted
// back to front): no WebGL, so it draws the same in any browser, headless or over a remote desktop without a GPU.
// Links whose visuals are missing are drawn as a skeleton: a rod from the link to each child joint.
'use strict';

const M4 = {
  identity() { return [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]; },
  multiply(a, b) {
    const r = new Array(16);
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) {
      r[4 * i + j] = a[4 * i] * b[j] + a[4 * i + 1] * b[4 + j] + a[4 * i + 2] * b[8 + j] + a[4 * i + 3] * b[12 + j];
    }
    return r;
  },
  // URDF origin: translation xyz, then rotation R = Rz(yaw) Ry(pitch) Rx(roll).
  origin(xyz, rpy) {
    const [r, p, y] = rpy, cr = Math.cos(r), sr = Math.sin(r), cp = Math.cos(p), sp = Math.sin(p);
    const cy = Math.cos(y), sy = Math.sin(y);
    return [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr, xyz[0],
      sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr, xyz[1],
      -sp, cp * sr, cp * cr, xyz[2], 0, 0, 0, 1];
  },
  axisAngle(axis, angle) {
    const n = Math.hypot(axis[0], axis[1], axis[2]) || 1;
    const x = axis[0] / n, y = axis[1] / n, z = axis[2] / n, c = Math.cos(angle), s = Math.sin(angle), t = 1 - c;
    return [t * x * x + c, t * x * y - s * z, t * x * z + s * y, 0, t * x * y + s * z, t * y * y + c,
      t * y * z - s * x, 0, t * x * z - s * y, t * y * z + s * x, t * z * z + c, 0, 0, 0, 0, 1];
  },
  translation(v) { return [1, 0, 0, v[0], 0, 1, 0, v[1], 0, 0, 1, v[2], 0, 0, 0, 1]; },
  scale(s) { return [s[0], 0, 0, 0, 0, s[1], 0, 0, 0, 0, s[2], 0, 0, 0, 0, 1]; },
  apply(m, p) {
    return [m[0] * p[0] + m[1] * p[1] + m[2] * p[2] + m[3], m[4] * p[0] + m[5] * p[1] + m[6] * p[2] + m[7],
      m[8] * p[0] + m[9] * p[1] + m[10] * p[2] + m[11]];
  },
};

// Triangle meshes (flat Float32Array of x y z per vertex, 9 per triangle) of the primitive shapes.
const Shapes = {
  box([sx, sy, sz]) {
    const x = sx / 2, y = sy / 2, z = sz / 2;
    const v = [[-x, -y, -z], [x, -y, -z], [x, y, -z], [-x, y, -z], [-x, -y, z], [x, -y, z], [x, y, z], [-x, y, z]];
    const f = [[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5], [2, 3, 7],
      [2, 7, 6], [3, 0, 4], [3, 4, 7]];
    return Float32Array.from(f.flatMap(t => t.flatMap(i => v[i])));
  },
  cylinder(radius, length, segments = 20) {
    const out = [], h = length / 2;
    for (let i = 0; i < segments; i++) {
      const a0 = 2 * Math.PI * i / segments, a1 = 2 * Math.PI * (i + 1) / segments;
      const p0 = [radius * Math.cos(a0), radius * Math.sin(a0)], p1 = [radius * Math.cos(a1), radius * Math.sin(a1)];
      out.push(p0[0], p0[1], -h, p1[0], p1[1], -h, p1[0], p1[1], h, p0[0], p0[1], -h, p1[0], p1[1], h, p0[0], p0[1], h);
      out.push(0, 0, h, p0[0], p0[1], h, p1[0], p1[1], h, 0, 0, -h, p1[0], p1[1], -h, p0[0], p0[1], -h);
    }
    return Float32Array.from(out);
  },
  sphere(radius, rings = 10, segments = 16) {
    const out = [];
    const point = (i, j) => {
      const th = Math.PI * i / rings, ph = 2 * Math.PI * j / segments;
      return [radius * Math.sin(th) * Math.cos(ph), radius * Math.sin(th) * Math.sin(ph), radius * Math.cos(th)];
    };
    for (let i = 0; i < rings; i++) for (let j = 0; j < segments; j++) {
      const a = point(i, j), b = point(i + 1, j), c = point(i + 1, j + 1), d = point(i, j + 1);
      out.push(...a, ...b, ...c, ...a, ...c, ...d);
    }
    return Float32Array.from(out);
  },
  // A rod from p to q (a thin box along the segment), for skeletons.
  rod(p, q, radius) {
    const d = [q[0] - p[0], q[1] - p[1], q[2] - p[2]], len = Math.hypot(...d);
    if (len < 1e-6) return new Float32Array(0);
    const z = [0, 0, 1], axis = [z[1] * d[2] - z[2] * d[1], z[2] * d[0] - z[0] * d[2], z[0] * d[1] - z[1] * d[0]];
    const angle = Math.acos(Math.max(-1, Math.min(1, d[2] / len)));
    const rot = Math.hypot(...axis) < 1e-9 ? (d[2] < 0 ? M4.axisAngle([1, 0, 0], Math.PI) : M4.identity())
      : M4.axisAngle(axis, angle);
    const m = M4.multiply(M4.translation([(p[0] + q[0]) / 2, (p[1] + q[1]) / 2, (p[2] + q[2]) / 2]), rot);
    const base = Shapes.cylinder(radius, len, 8), out = new Float32Array(base.length);
    for (let i = 0; i < base.length; i += 3) out.set(M4.apply(m, [base[i], base[i + 1], base[i + 2]]), i);
    return out;
  },
};

// Mesh files: binary or ASCII STL, OBJ, and the triangles of a COLLADA (DAE) file's first geometries.
const MeshFormats = {
  stl(buffer) {
    const view = new DataView(buffer);
    if (buffer.byteLength >= 84) {
      const n = view.getUint32(80, true);
      if (84 + 50 * n === buffer.byteLength) {
        const out = new Float32Array(9 * n);
        for (let i = 0; i < n; i++) for (let k = 0; k < 9; k++) out[9 * i + k] = view.getFloat32(84 + 50 * i + 12 + 4 * k, true);
        return out;
      }
    }
    const text = new TextDecoder().decode(buffer), out = [];
    const re = /vertex\s+(\S+)\s+(\S+)\s+(\S+)/g;
    let m;
    while ((m = re.exec(text))) out.push(+m[1], +m[2], +m[3]);
    return Float32Array.from(out.slice(0, out.length - out.length % 9));
  },
  obj(buffer) {
    const v = [], out = [];
    for (const line of new TextDecoder().decode(buffer).split('\n')) {
      const p = line.trim().split(/\s+/);
      if (p[0] === 'v') v.push([+p[1], +p[2], +p[3]]);
      else if (p[0] === 'f') {
        const idx = p.slice(1).map(s => { const i = parseInt(s, 10); return i < 0 ? v.length + i : i - 1; });
        for (let k = 1; k + 1 < idx.length; k++) for (const i of [idx[0], idx[k], idx[k + 1]]) if (v[i]) out.push(...v[i]);
      }
    }
    return Float32Array.from(out.slice(0, out.length - out.length % 9));
  },
  dae(buffer) {
    const doc = new DOMParser().parseFromString(new TextDecoder().decode(buffer), 'application/xml');
    const unit = parseFloat(doc.querySelector('asset > unit')?.getAttribute('meter') || '1') || 1;
    const out = [];
    for (const mesh of doc.querySelectorAll('mesh')) {
      const sources = {};
      for (const s of mesh.querySelectorAll('source')) {
        sources[s.getAttribute('id')] = (s.querySelector('float_array')?.textContent || '').trim().split(/\s+/).map(Number);
      }
      const vertices = mesh.querySelector('vertices');
      const positionsId = vertices?.querySelector('input[semantic=POSITION]')?.getAttribute('source')?.slice(1);
      const positions = sources[positionsId];
      if (!positions) continue;
      for (const prim of mesh.querySelectorAll('triangles, polylist')) {
        const inputs = [...prim.querySelectorAll('input')];
        const stride = Math.max(...inputs.map(i => +i.getAttribute('offset') || 0)) + 1;
        const vOffset = +(inputs.find(i => i.getAttribute('semantic') === 'VERTEX')?.getAttribute('offset') || 0);
        const p = (prim.querySelector('p')?.textContent || '').trim().split(/\s+/).map(Number);
        const counts = prim.tagName === 'polylist'
          ? (prim.querySelector('vcount')?.textContent || '').trim().split(/\s+/).map(Number) : null;
        const vertex = k => { const i = p[k * stride + vOffset]; return [positions[3 * i], positions[3 * i + 1], positions[3 * i + 2]]; };
        if (!counts) { for (let k = 0; k + 2 < p.length / stride; k += 3) out.push(...vertex(k), ...vertex(k + 1), ...vertex(k + 2)); }
        else {
          let k = 0;
          for (const n of counts) { for (let j = 1; j + 1 < n; j++) out.push(...vertex(k), ...vertex(k + j), ...vertex(k + j + 1)); k += n; }
        }
      }
    }
    return Float32Array.from(out.map(x => x * unit).filter(Number.isFinite));
  },
};

class RobotView {
  constructor(canvas, note) {
    this.canvas = canvas;
    this.note = note;
    this.description = null;
    this.parts = []; // {link, transform (visual in link), triangles, color}
    this.positions = {}; // joint name → position
    this.yaw = 0.8; this.pitch = 0.45; this.distance = 1; this.center = [0, 0, 0];
    this.drawn = 0;
    this.triangleCount = 0;
    this.dirty = true; // new joint positions or a camera move since the last draw
    this.installControls();
  }

  installControls() {
    let drag = null;
    this.canvas.addEventListener('mousedown', e => { drag = [e.clientX, e.clientY]; });
    window.addEventListener('mouseup', () => { drag = null; });
    window.addEventListener('mousemove', e => {
      if (!drag) return;
      this.yaw -= (e.clientX - drag[0]) * 0.01;
      this.pitch = Math.max(-1.5, Math.min(1.5, this.pitch + (e.clientY - drag[1]) * 0.01));
      drag = [e.clientX, e.clientY];
      this.dirty = true;
    });
    this.canvas.addEventListener('wheel', e => { e.preventDefault(); this.distance *= Math.exp(e.deltaY * 0.001); this.dirty = true; },
      { passive: false });
  }

  async load(url) {
    const response = await fetch(url, { credentials: 'same-origin' });
    if (!response.ok) throw new Error('robot description: HTTP ' + response.status);
    this.description = await response.json();
    const d = this.description;
    this.joints = d.joints;
    this.childJoints = {};
    for (const j of d.joints) (this.childJoints[j.parent] = this.childJoints[j.parent] || []).push(j);
    const drawable = new Set();
    for (const link of d.links) {
      for (const v of link.visuals) {
        const g = v.geometry, color = v.color || [0.75, 0.75, 0.8, 1];
        const transform = M4.origin(v.xyz, v.rpy);
        let triangles = null;
        if (g.type === 'box') triangles = Shapes.box(g.size);
        else if (g.type === 'cylinder') triangles = Shapes.cylinder(g.radius, g.length);
        else if (g.type === 'sphere') triangles = Shapes.sphere(g.radius);
        else if (g.type === 'mesh') {
          try {
            const r = await fetch(g.url, { credentials: 'same-origin' });
            if (!r.ok) throw new Error('HTTP ' + r.status);
            triangles = MeshFormats[g.format](await r.arrayBuffer());
            const s = g.scale;
            if (s[0] !== 1 || s[1] !== 1 || s[2] !== 1) {
              for (let i = 0; i < triangles.length; i += 3) { triangles[i] *= s[0]; triangles[i + 1] *= s[1]; triangles[i + 2] *= s[2]; }
            }
          } catch (e) { triangles = null; }
        }
        if (triangles && triangles.length) {
          this.parts.push({ link: link.name, transform, triangles, color });
          drawable.add(link.name);
        }
      }
    }
    // Skeleton for links with nothing drawable: rods to child joints, a ball at the link's origin.
    const size = this.extent();
    const radius = Math.max(size * 0.015, 0.004);
    for (const link of d.links) {
      if (drawable.has(link.name)) continue;
      for (const j of this.childJoints[link.name] || []) {
        this.parts.push({ link: link.name, transform: M4.identity(), triangles: Shapes.rod([0, 0, 0], j.xyz, radius),
          color: [0.95, 0.7, 0.15, 1] });
      }
      this.parts.push({ link: link.name, transform: M4.identity(), triangles: Shapes.sphere(radius * 1.6, 6, 10),
        color: [0.35, 0.4, 0.48, 1] });
    }
    this.triangleCount = this.parts.reduce((n, p) => n + p.triangles.length / 9, 0);
    const missing = d.missing_meshes || [];
    this.note.textContent = `${d.links.length} links, ${this.triangleCount} triangles` +
      (missing.length ? `; ${missing.length} mesh file(s) not found on the robot's machine (drawn as a skeleton)` : '');
    this.fit();
    this.dirty = true;
  }

  // A rough size of the robot: the sum of its joint offsets.
  extent() {
    let s = 0;
    for (const j of this.description.joints) s += Math.hypot(...j.xyz);
    return Math.max(s, 0.1);
  }

  linkTransforms() {
    const d = this.description, out = {};
    const position = j => {
      if (j.mimic) return (this.positions[j.mimic.joint] || 0) * j.mimic.multiplier + j.mimic.offset;
      return this.positions[j.name] || 0;
    };
    const visit = (link, m) => {
      if (out[link]) return; // a URDF whose joints form a loop is drawn once per link
      out[link] = m;
      for (const j of this.childJoints[link] || []) {
        let t = M4.multiply(m, M4.origin(j.xyz, j.rpy));
        const q = position(j);
        if (j.type === 'revolute' || j.type === 'continuous') t = M4.multiply(t, M4.axisAngle(j.axis, q));
        else if (j.type === 'prismatic') t = M4.multiply(t, M4.translation(j.axis.map(a => a * q)));
        visit(j.child, t);
      }
    };
    visit(d.root, M4.identity());
    return out;
  }

  fit() {
    const links = this.linkTransforms();
    let lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (const part of this.parts) {
      const m = M4.multiply(links[part.link] || M4.identity(), part.transform), t = part.triangles;
      for (let i = 0; i < t.length; i += 9 * 7) {
        const p = M4.apply(m, [t[i], t[i + 1], t[i + 2]]);
        for (let k = 0; k < 3; k++) { lo[k] = Math.min(lo[k], p[k]); hi[k] = Math.max(hi[k], p[k]); }
      }
    }
    if (!Number.isFinite(lo[0])) { lo = [-0.2, -0.2, 0]; hi = [0.2, 0.2, 0.4]; }
    this.center = [0, 1, 2].map(k => (lo[k] + hi[k]) / 2);
    this.distance = 2.2 * Math.max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], 0.1);
    this.groundZ = lo[2];
  }

  setPositions(names, values) {
    for (let i = 0; i < names.length; i++) {
      if (Number.isFinite(values[i]) && this.positions[names[i]] !== values[i]) {
        this.positions[names[i]] = values[i];
        this.dirty = true;
      }
    }
  }

  draw() {
    const c = this.canvas, g = c.getContext('2d'), w = c.width, h = c.height;
    g.fillStyle = '#11151b'; g.fillRect(0, 0, w, h);
    if (!this.description) return;
    // Camera: orbit around the centre, z up.
    const cy = Math.cos(this.yaw), sy = Math.sin(this.yaw), cp = Math.cos(this.pitch), sp = Math.sin(this.pitch);
    const eye = [this.center[0] + this.distance * cp * cy, this.center[1] + this.distance * cp * sy,
      this.center[2] + this.distance * sp];
    const f = normalize([this.center[0] - eye[0], this.center[1] - eye[1], this.center[2] - eye[2]]);
    const r = normalize(cross(f, [0, 0, 1])), u = cross(r, f);
    const focal = 0.5 * h / Math.tan(0.35);
    const project = p => {
      const d = [p[0] - eye[0], p[1] - eye[1], p[2] - eye[2]];
      const z = dot(d, f);
      return [w / 2 + focal * dot(d, r) / z, h / 2 - focal * dot(d, u) / z, z];
    };
    // Ground grid.
    g.strokeStyle = '#262d38'; g.lineWidth = 1;
    const span = this.distance * 0.6, step = niceStep(span / 5), z0 = this.groundZ || 0;
    for (let a = -span; a <= span + 1e-9; a += step) {
      const lines = [[[this.center[0] + a, this.center[1] - span, z0], [this.center[0] + a, this.center[1] + span, z0]],
        [[this.center[0] - span, this.center[1] + a, z0], [this.center[0] + span, this.center[1] + a, z0]]];
      for (const [p, q] of lines) {
        const P = project(p), Q = project(q);
        if (P[2] > 0 && Q[2] > 0) { g.beginPath(); g.moveTo(P[0], P[1]); g.lineTo(Q[0], Q[1]); g.stroke(); }
      }
    }
    const links = this.linkTransforms(), light = normalize([0.4, 0.3, 0.85]), faces = [];
    for (const part of this.parts) {
      const m = M4.multiply(links[part.link] || M4.identity(), part.transform), t = part.triangles;
      for (let i = 0; i + 8 < t.length; i += 9) {
        const a = M4.apply(m, [t[i], t[i + 1], t[i + 2]]), b = M4.apply(m, [t[i + 3], t[i + 4], t[i + 5]]);
        const cc = M4.apply(m, [t[i + 6], t[i + 7], t[i + 8]]);
        const n = normalize(cross([b[0] - a[0], b[1] - a[1], b[2] - a[2]], [cc[0] - a[0], cc[1] - a[1], cc[2] - a[2]]));
        const A = project(a), B = project(b), C = project(cc);
        if (A[2] <= 0 || B[2] <= 0 || C[2] <= 0) continue;
        const shade = 0.35 + 0.65 * Math.abs(dot(n, light));
        faces.push([(A[2] + B[2] + C[2]) / 3, A, B, C, part.color, shade]);
      }
    }
    faces.sort((p, q) => q[0] - p[0]);
    for (const [, A, B, C, col, s] of faces) {
      g.fillStyle = `rgb(${Math.round(255 * col[0] * s)},${Math.round(255 * col[1] * s)},${Math.round(255 * col[2] * s)})`;
      g.beginPath(); g.moveTo(A[0], A[1]); g.lineTo(B[0], B[1]); g.lineTo(C[0], C[1]); g.closePath(); g.fill();
    }
    // World axes at the root: x red, y green, z blue.
    const o = project([0, 0, 0]), axisLength = this.distance * 0.08;
    for (const [v, col] of [[[axisLength, 0, 0], '#e05252'], [[0, axisLength, 0], '#52c06b'], [[0, 0, axisLength], '#4c9be8']]) {
      const p = project(v);
      if (o[2] > 0 && p[2] > 0) { g.strokeStyle = col; g.lineWidth = 2; g.beginPath(); g.moveTo(o[0], o[1]); g.lineTo(p[0], p[1]); g.stroke(); }
    }
    this.drawn++;
  }
}

function dot(a, b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
function cross(a, b) { return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]; }
function normalize(v) { const n = Math.hypot(v[0], v[1], v[2]) || 1; return [v[0] / n, v[1] / n, v[2] / n]; }
