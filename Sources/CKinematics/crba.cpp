// Composite rigid-body algorithm for the joint-space mass matrix, in the world frame: with every inertia
// and motion subspace expressed about the world origin, composites add without transforms and each
// entry M(i, j) is one dot product (the formulation Pinocchio also uses).
#include <cstring>

#include "model.hpp"

using namespace sk;

extern "C" void sk_crba(const sk_model *model, sk_data *data, const double *q, double *M) {
    const int n = model->nv;
    sk_forward_kinematics_bodies(model, data, q);
    // Motion subspaces in the world frame, about the world origin, kept in vLin/vAng.
    for (int i = 0; i < n; ++i) {
        const Body &b = model->bodies[i];
        data->composite[i] = b.inertia.toParent(data->oR[i], data->op[i]);
        const Vec3 a = data->oR[i] * b.axis;
        if (b.type == SK_JOINT_PRISMATIC) {
            data->vLin[i] = a;
            data->vAng[i].setZero();
        } else {
            data->vLin[i] = data->op[i].cross(a);
            data->vAng[i] = a;
        }
    }
    // Entries between joints on different branches stay zero.
    std::memset(M, 0, sizeof(double) * n * n);
    for (int i = n - 1; i >= 0; --i) {
        const Inertia &Ic = data->composite[i];
        Vec3 f, t;
        Ic.apply(data->vLin[i], data->vAng[i], f, t);
        for (int j : model->support[i]) {
            const double mij = data->vLin[j].dot(f) + data->vAng[j].dot(t);
            M[i + n * j] = mij;
            M[j + n * i] = mij;
        }
        const int parent = model->bodies[i].parent;
        if (parent >= 0) {
            Inertia &acc = data->composite[parent];
            acc.mass += Ic.mass;
            acc.h += Ic.h;
            acc.I += Ic.I;
        }
    }
}
