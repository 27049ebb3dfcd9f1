// Recursive Newton-Euler inverse dynamics in body frames; gravity enters as a base acceleration.
#include "model.hpp"

using namespace sk;

// PlacementsReady: liR/lip already hold the placements for q (forward kinematics just ran on the same q), so
// the sines and cosines are not taken again.
template <bool WithMotion, bool PlacementsReady = false>
static void rneaImpl(const sk_model *model, sk_data *data, const double *q, const double *v, const double *a,
                     double *tau) {
    const int n = model->nv;
    const Vec3 baseAcc = -model->gravity;
    for (int i = 0; i < n; ++i) {
        const Body &b = model->bodies[i];
        Mat3 &R = data->liR[i];
        Vec3 &p = data->lip[i];
        if (!PlacementsReady) jointPlacement(b, q[i], R, p);
        Vec3 &vl = data->vLin[i], &vw = data->vAng[i], &al = data->aLin[i], &aw = data->aAng[i];
        if (b.parent < 0) {
            vl.setZero();
            vw.setZero();
            al.noalias() = R.transpose() * baseAcc;
            aw.setZero();
        } else {
            const int par = b.parent;
            if (WithMotion) {
                vw.noalias() = R.transpose() * data->vAng[par];
                vl.noalias() = R.transpose() * (data->vLin[par] - p.cross(data->vAng[par]));
            }
            aw.noalias() = R.transpose() * data->aAng[par];
            al.noalias() = R.transpose() * (data->aLin[par] - p.cross(data->aAng[par]));
        }
        if (WithMotion) {
            const double qd = v[i], qdd = a[i];
            if (b.type == SK_JOINT_PRISMATIC) {
                const Vec3 s = b.axis * qd;
                al += b.axis * qdd + vw.cross(s);
                vl += s;
            } else {
                const Vec3 s = b.axis * qd;
                al += vl.cross(s);
                aw += b.axis * qdd + vw.cross(s);
                vw += s;
            }
        }
        Vec3 &fl = data->fLin[i], &fa = data->fAng[i];
        b.inertia.apply(al, aw, fl, fa);
        if (WithMotion) {
            Vec3 hl, ha;
            b.inertia.apply(vl, vw, hl, ha);
            fl += vw.cross(hl);
            fa += vw.cross(ha) + vl.cross(hl);
        }
    }
    for (int i = n - 1; i >= 0; --i) {
        const Body &b = model->bodies[i];
        const Vec3 &fl = data->fLin[i], &fa = data->fAng[i];
        tau[i] = b.type == SK_JOINT_PRISMATIC ? b.axis.dot(fl) : b.axis.dot(fa);
        if (b.parent >= 0) {
            const Vec3 flp = data->liR[i] * fl;
            data->fLin[b.parent] += flp;
            data->fAng[b.parent] += data->liR[i] * fa + data->lip[i].cross(flp);
        }
    }
}

extern "C" void sk_rnea(const sk_model *model, sk_data *data, const double *q, const double *v, const double *a,
                        double *tau) {
    rneaImpl<true>(model, data, q, v, a, tau);
}

extern "C" void sk_gravity(const sk_model *model, sk_data *data, const double *q, double *tau) {
    rneaImpl<false>(model, data, q, nullptr, nullptr, tau);
}

void sk::rneaAfterKinematics(const sk_model *model, sk_data *data, const double *q, const double *v, const double *a,
                             double *tau) {
    rneaImpl<true, true>(model, data, q, v, a, tau);
}
