/*
 * CPolicyNetwork: a feed-forward network (a stack of fully connected layers, each followed by an
 * activation) evaluated in float64, C++17 over Eigen 3.4 behind a plain C interface.
 *
 * Model/data split: a pn_model is built once from layer descriptions (the weights are copied) and never
 * changes; a pn_workspace holds the intermediate activations of one evaluation and is sized for one model.
 * pn_evaluate allocates nothing: every buffer is made by pn_model_create and pn_workspace_create.
 *
 * Conventions
 * - A layer computes y = activation(W x + b), W being output_count x input_count, row-major: the layout of
 *   PyTorch's nn.Linear.weight ([out, in]), so a state_dict tensor is passed as it is stored.
 * - Arithmetic is float64 whatever the weights were stored in (float32 weights are widened exactly), so
 *   results agree with a float64 reference to rounding (about 1e-15 relative), not only to float32's 1e-7.
 * - Activations follow PyTorch's definitions: relu max(x, 0) (NaN stays NaN); tanh; elu x > 0 ? x :
 *   alpha (e^x - 1); gelu the exact x/2 (1 + erf(x/sqrt 2)) (nn.GELU()); gelu_tanh the tanh approximation
 *   x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (nn.GELU(approximate="tanh")).
 */
#ifndef SINEW_CPOLICYNETWORK_H
#define SINEW_CPOLICYNETWORK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pn_model pn_model;
typedef struct pn_workspace pn_workspace;

enum {
    PN_ACTIVATION_IDENTITY = 0,
    PN_ACTIVATION_RELU = 1,
    PN_ACTIVATION_TANH = 2,
    PN_ACTIVATION_ELU = 3,
    PN_ACTIVATION_GELU = 4,
    PN_ACTIVATION_GELU_TANH = 5,
};

typedef struct {
    int32_t input_count;
    int32_t output_count;
    /** output_count x input_count, row-major. */
    const double *weight;
    /** output_count values, or NULL for a layer without bias. */
    const double *bias;
    /** PN_ACTIVATION_*, applied to this layer's output. */
    int32_t activation;
    /** ELU's alpha (PyTorch's default is 1); ignored by the other activations. */
    double elu_alpha;
} pn_layer_desc;

/** Builds a model, copying the weights. Returns NULL when the layers do not chain (a layer's input_count
 * differs from the previous one's output_count), a count is not positive, an activation is unknown, or
 * memory runs out. */
pn_model *pn_model_create(const pn_layer_desc *layers, int32_t layer_count);
void pn_model_destroy(pn_model *model);
int32_t pn_model_layer_count(const pn_model *model);
int32_t pn_model_input_count(const pn_model *model);
int32_t pn_model_output_count(const pn_model *model);

pn_workspace *pn_workspace_create(const pn_model *model);
void pn_workspace_destroy(pn_workspace *workspace);

/** One forward pass: input_count values in, output_count values out (output may not alias input). */
void pn_evaluate(const pn_model *model, pn_workspace *workspace, const double *input, double *output);

#ifdef __cplusplus
}
#endif

#endif
