// Composite rigid-body algorithm for the joint-space mass matrix.
#include "model.hpp"

#include <cstring>

using namespace sk;

extern "C" void sk_crba(const sk_model *model, sk_data *data, const double *q, double *M) {
    const int n = model->nv;
    // Entries between joints on different branches stay zero.
    std::memset(M, 0, sizeof(double) * n * n);
    for (int i = 0; i < n; ++i) {
        jointPlacement(model->bodies[i], q[i], data->liR[i], data->lip[i]);
        data->composite[i] = model->bodies[i].inertia;
    }
    for (int i = n - 1; i >= 0; --i) {
        const Body &b = model->bodies[i];
        Vec3 sl, sa, fl, fa;
        motionSubspace(b, sl, sa);
        const Inertia &Ic = data->composite[i];
        Ic.apply(sl, sa, fl, fa);
        M[i + n * i] = sl.dot(fl) + sa.dot(fa);
        int j = i;
        while (model->bodies[j].parent >= 0) {
            const Vec3 flp = data->liR[j] * fl;
            fa = data->liR[j] * fa + data->lip[j].cross(flp);
            fl = flp;
            j = model->bodies[j].parent;
            motionSubspace(model->bodies[j], sl, sa);
            const double mij = sl.dot(fl) + sa.dot(fa);
            M[i + n * j] = mij;
            M[j + n * i] = mij;
        }
        if (b.parent >= 0) {
            const Inertia moved = Ic.toParent(data->liR[i], data->lip[i]);
            Inertia &acc = data->composite[b.parent];
            acc.mass += moved.mass;
            acc.h += moved.h;
            acc.I += moved.I;
        }
    }
}
