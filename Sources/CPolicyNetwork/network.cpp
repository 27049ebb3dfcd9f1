// The network's model, its workspace and the forward pass. Only pn_model_create and pn_workspace_create
// allocate.
#include "CPolicyNetwork.h"

#include <Eigen/Core>
#include <cmath>
#include <new>
#include <vector>

namespace {

using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vector = Eigen::VectorXd;

struct Layer {
    RowMajorMatrix weight;
    Vector bias;
    int32_t activation;
    double eluAlpha;
};

// Elementwise activations as scalar loops: Eigen vectorises tanh only for float, and its fast paths trade
// accuracy we keep (the reference is float64 math).
void activate(int32_t activation, double eluAlpha, double *v, Eigen::Index n) {
    switch (activation) {
    case PN_ACTIVATION_RELU:
        // `v < 0` is false for NaN, so a NaN input stays NaN (as in PyTorch) instead of becoming 0.
        for (Eigen::Index i = 0; i < n; ++i) v[i] = v[i] < 0.0 ? 0.0 : v[i];
        break;
    case PN_ACTIVATION_TANH:
        for (Eigen::Index i = 0; i < n; ++i) v[i] = std::tanh(v[i]);
        break;
    case PN_ACTIVATION_ELU:
        for (Eigen::Index i = 0; i < n; ++i) v[i] = v[i] > 0.0 ? v[i] : eluAlpha * std::expm1(v[i]);
        break;
    case PN_ACTIVATION_GELU:
        for (Eigen::Index i = 0; i < n; ++i) v[i] = 0.5 * v[i] * (1.0 + std::erf(v[i] * M_SQRT1_2));
        break;
    case PN_ACTIVATION_GELU_TANH: {
        const double c = std::sqrt(2.0 / M_PI);
        for (Eigen::Index i = 0; i < n; ++i) {
            const double x = v[i];
            v[i] = 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
        }
        break;
    }
    default:
        break;
    }
}

} // namespace

struct pn_model {
    std::vector<Layer> layers;
    Eigen::Index widest = 0;
};

struct pn_workspace {
    // Ping-pong buffers for the hidden layers' outputs, each as wide as the widest layer.
    Vector a;
    Vector b;
};

extern "C" pn_model *pn_model_create(const pn_layer_desc *layers, int32_t layer_count) {
    if (layers == nullptr || layer_count <= 0) return nullptr;
    for (int32_t k = 0; k < layer_count; ++k) {
        const pn_layer_desc &d = layers[k];
        if (d.input_count <= 0 || d.output_count <= 0 || d.weight == nullptr) return nullptr;
        if (k > 0 && d.input_count != layers[k - 1].output_count) return nullptr;
        if (d.activation < PN_ACTIVATION_IDENTITY || d.activation > PN_ACTIVATION_GELU_TANH) return nullptr;
    }
    try {
        auto *model = new pn_model();
        model->layers.reserve(static_cast<size_t>(layer_count));
        for (int32_t k = 0; k < layer_count; ++k) {
            const pn_layer_desc &d = layers[k];
            Layer layer;
            layer.weight = Eigen::Map<const RowMajorMatrix>(d.weight, d.output_count, d.input_count);
            layer.bias = d.bias ? Vector(Eigen::Map<const Vector>(d.bias, d.output_count))
                                : Vector(Vector::Zero(d.output_count));
            layer.activation = d.activation;
            layer.eluAlpha = d.elu_alpha;
            if (k + 1 < layer_count && d.output_count > model->widest) model->widest = d.output_count;
            model->layers.push_back(std::move(layer));
        }
        return model;
    } catch (const std::bad_alloc &) {
        return nullptr;
    }
}

extern "C" void pn_model_destroy(pn_model *model) { delete model; }

extern "C" int32_t pn_model_layer_count(const pn_model *model) {
    return static_cast<int32_t>(model->layers.size());
}

extern "C" int32_t pn_model_input_count(const pn_model *model) {
    return static_cast<int32_t>(model->layers.front().weight.cols());
}

extern "C" int32_t pn_model_output_count(const pn_model *model) {
    return static_cast<int32_t>(model->layers.back().weight.rows());
}

extern "C" pn_workspace *pn_workspace_create(const pn_model *model) {
    try {
        auto *workspace = new pn_workspace();
        const Eigen::Index n = model->widest > 0 ? model->widest : 1;
        workspace->a = Vector::Zero(n);
        workspace->b = Vector::Zero(n);
        return workspace;
    } catch (const std::bad_alloc &) {
        return nullptr;
    }
}

extern "C" void pn_workspace_destroy(pn_workspace *workspace) { delete workspace; }

extern "C" void pn_evaluate(const pn_model *model, pn_workspace *workspace, const double *input, double *output) {
    const size_t count = model->layers.size();
    const double *x = input;
    for (size_t k = 0; k < count; ++k) {
        const Layer &layer = model->layers[k];
        const Eigen::Index n = layer.weight.rows();
        double *y = k + 1 == count ? output : (k % 2 == 0 ? workspace->a.data() : workspace->b.data());
        Eigen::Map<const Vector> in(x, layer.weight.cols());
        Eigen::Map<Vector> out(y, n);
        // y = b, then y += W x: one pass over y, and Eigen's matrix-vector kernel writes into it directly.
        out = layer.bias;
        out.noalias() += layer.weight * in;
        activate(layer.activation, layer.eluAlpha, y, n);
        x = y;
    }
}
