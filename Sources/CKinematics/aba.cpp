// Articulated-body algorithm for forward dynamics, in body frames with 6x6 articulated inertias.
#include "model.hpp"

using namespace sk;

namespace {
// Motion transform from a parent frame into the child frame whose pose in the parent is (R, p):
// [[R^T, -R^T [p]x], [0, R^T]] acting on (linear, angular).
inline Mat6 motionToChild(const Mat3 &R, const Vec3 &p) {
    Mat3 px;
    px << 0, -p.z(), p.y(), p.z(), 0, -p.x(), -p.y(), p.x(), 0;
    Mat6 X;
    X.topLeftCorner<3, 3>() = R.transpose();
    X.topRightCorner<3, 3>().noalias() = -R.transpose() * px;
    X.bottomLeftCorner<3, 3>().setZero();
    X.bottomRightCorner<3, 3>() = R.transpose();
    return X;
}

inline Vec6 motionCross(const Vec6 &m, const Vec6 &s) {
    Vec6 out;
    const Vec3 v = m.head<3>(), w = m.tail<3>(), sv = s.head<3>(), sw = s.tail<3>();
    out.head<3>() = w.cross(sv) + v.cross(sw);
    out.tail<3>() = w.cross(sw);
    return out;
}

inline Vec6 forceCross(const Vec6 &m, const Vec6 &f) {
    Vec6 out;
    const Vec3 v = m.head<3>(), w = m.tail<3>(), fl = f.head<3>(), fa = f.tail<3>();
    out.head<3>() = w.cross(fl);
    out.tail<3>() = w.cross(fa) + v.cross(fl);
    return out;
}

inline Vec6 subspace(const Body &b) {
    Vec6 S;
    if (b.type == SK_JOINT_PRISMATIC) {
        S.head<3>() = b.axis;
        S.tail<3>().setZero();
    } else {
        S.head<3>().setZero();
        S.tail<3>() = b.axis;
    }
    return S;
}
}  // namespace

extern "C" void sk_aba(const sk_model *model, sk_data *data, const double *q, const double *v, const double *tau,
                       double *ddq) {
    const int n = model->nv;
    // Pass 1: velocities, velocity-product accelerations and bias forces.
    for (int i = 0; i < n; ++i) {
        const Body &b = model->bodies[i];
        jointPlacement(b, q[i], data->liR[i], data->lip[i]);
        const Vec6 S = subspace(b);
        Vec6 vi = S * v[i];
        if (b.parent >= 0) {
            const Mat3 &R = data->liR[i];
            const Vec3 &p = data->lip[i];
            const Vec3 &vl = data->vLin[b.parent], &vw = data->vAng[b.parent];
            vi.head<3>() += R.transpose() * (vl - p.cross(vw));
            vi.tail<3>() += R.transpose() * vw;
        }
        data->vLin[i] = vi.head<3>();
        data->vAng[i] = vi.tail<3>();
        data->biasAcc[i] = motionCross(vi, S * v[i]);
        data->articulated[i] = b.inertia.matrix();
        const Vec6 h = data->articulated[i] * vi;
        data->biasForce[i] = forceCross(vi, h);
    }
    // Pass 2: articulated inertias and bias forces, leaves to root.
    for (int i = n - 1; i >= 0; --i) {
        const Body &b = model->bodies[i];
        const Vec6 S = subspace(b);
        const Mat6 &IA = data->articulated[i];
        Vec6 &U = data->U[i];
        U.noalias() = IA * S;
        const double D = S.dot(U);
        data->Dinv[i] = 1.0 / D;
        data->u[i] = tau[i] - S.dot(data->biasForce[i]);
        if (b.parent >= 0) {
            Mat6 Ia = IA;
            Ia.noalias() -= U * (U.transpose() * data->Dinv[i]);
            Vec6 pa = data->biasForce[i];
            pa.noalias() += Ia * data->biasAcc[i];
            pa += U * (data->u[i] * data->Dinv[i]);
            const Mat6 X = motionToChild(data->liR[i], data->lip[i]);
            const Mat6 IaX = Ia * X;
            data->articulated[b.parent].noalias() += X.transpose() * IaX;
            data->biasForce[b.parent].noalias() += X.transpose() * pa;
        }
    }
    // Pass 3: accelerations, root to leaves. The base accelerates upward to model gravity.
    for (int i = 0; i < n; ++i) {
        const Body &b = model->bodies[i];
        const Vec6 S = subspace(b);
        Vec6 a;
        const Mat3 &R = data->liR[i];
        if (b.parent < 0) {
            a.head<3>() = R.transpose() * (-model->gravity);
            a.tail<3>().setZero();
        } else {
            const Vec3 &al = data->aLin[b.parent], &aw = data->aAng[b.parent];
            a.head<3>() = R.transpose() * (al - data->lip[i].cross(aw));
            a.tail<3>() = R.transpose() * aw;
        }
        a += data->biasAcc[i];
        ddq[i] = (data->u[i] - data->U[i].dot(a)) * data->Dinv[i];
        a += S * ddq[i];
        data->aLin[i] = a.head<3>();
        data->aAng[i] = a.tail<3>();
    }
}
