// Command healthcheck reads Kubernetes objects and health-check expressions as JSON on stdin
// and prints, for each object, what kstatus and Flux's CEL health check make of it.
//
// It exists so the verdicts in docs/gitops/README.md are measured with the code those tools
// run, not a re-implementation: kstatus' status.Compute (sigs.k8s.io/cli-utils, as kpt,
// Config Sync and the kstatus CLI use it), the same function in Flux's fork of cli-utils (what
// Flux runs for a kind without healthCheckExprs), and Flux's CEL status reader
// (github.com/fluxcd/pkg/runtime/cel), driven through the reader kustomize-controller builds,
// so an evaluation error reads Unknown exactly as Flux reports it.
//
// Input:  {"healthCheckExprs": [{apiVersion, kind, current, inProgress?, failed?}],
//
//	"objects": [{"name": "...", "object": {...}}]}
//
// Output: one JSON array, one entry per object, in input order.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	fluxstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type healthCheck struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	kustomize.HealthCheckExpressions
}

type input struct {
	HealthCheckExprs []healthCheck `json:"healthCheckExprs"`
	Objects          []struct {
		Name   string         `json:"name"`
		Object map[string]any `json:"object"`
	} `json:"objects"`
}

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

type output struct {
	Name      string   `json:"name"`
	Kstatus   verdict  `json:"kstatus"`
	FluxPlain verdict  `json:"fluxKstatus"`
	FluxCEL   *verdict `json:"fluxCEL,omitempty"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

func run() error {
	var in input
	decoder := json.NewDecoder(os.Stdin)
	decoder.UseNumber()
	if err := decoder.Decode(&in); err != nil {
		return fmt.Errorf("reading input: %w", err)
	}
	ctx := context.Background()
	evaluators := map[schema.GroupVersionKind]*fluxcel.StatusEvaluator{}
	for _, hc := range in.HealthCheckExprs {
		gv, err := schema.ParseGroupVersion(hc.APIVersion)
		if err != nil {
			return fmt.Errorf("healthCheckExprs %s: %w", hc.Kind, err)
		}
		evaluator, err := fluxcel.NewStatusEvaluator(&hc.HealthCheckExpressions)
		if err != nil {
			return fmt.Errorf("healthCheckExprs %s: %w", hc.Kind, err)
		}
		evaluators[gv.WithKind(hc.Kind)] = evaluator
	}
	results := make([]output, 0, len(in.Objects))
	for _, item := range in.Objects {
		u := &unstructured.Unstructured{Object: normalize(item.Object).(map[string]any)}
		out := output{Name: item.Name}
		if res, err := status.Compute(u); err != nil {
			out.Kstatus = verdict{Status: "Error", Error: err.Error()}
		} else {
			out.Kstatus = verdict{Status: res.Status.String(), Message: res.Message}
		}
		if res, err := fluxstatus.Compute(u); err != nil {
			out.FluxPlain = verdict{Status: "Error", Error: err.Error()}
		} else {
			out.FluxPlain = verdict{Status: res.Status.String(), Message: res.Message}
		}
		gvk := u.GroupVersionKind()
		if evaluator, ok := evaluators[gvk]; ok {
			// The reader kustomize-controller registers for a kind with healthCheckExprs.
			reader := fluxcel.NewStatusReader(ctx, nil, gvk.GroupKind(), evaluator)
			rs, err := reader.ReadStatusForObject(ctx, nil, u)
			if err != nil {
				return fmt.Errorf("%s: %w", item.Name, err)
			}
			v := verdict{Status: rs.Status.String(), Message: rs.Message}
			if rs.Error != nil {
				v.Error = rs.Error.Error()
			}
			out.FluxCEL = &v
		}
		results = append(results, out)
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetIndent("", "  ")
	return encoder.Encode(results)
}

// normalize turns json.Number into int64 or float64, as the API server's JSON decoding does
// for unstructured objects (kstatus reads metadata.generation as an int64).
func normalize(value any) any {
	switch v := value.(type) {
	case map[string]any:
		for key, item := range v {
			v[key] = normalize(item)
		}
		return v
	case []any:
		for i, item := range v {
			v[i] = normalize(item)
		}
		return v
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	default:
		return v
	}
}
