// Command thirdparty-crds writes the real CustomResourceDefinitions of the projects
// Personal Cloud works with (KubeVirt, Multus, whereabouts, Cilium, Gateway API, Argo CD) into a
// folder, taking them from pinned upstream Go modules at setup time. Nothing it writes
// is committed: the schemas are upstream's, fetched and checksum-verified by the Go
// module proxy and sum database.
//
// KubeVirt renders its CRDs at run time inside virt-operator, so there is no YAML file
// to copy. We take the OpenAPI schemas from the pinned kubevirt module's own generated
// validation table (pkg/virt-operator/resource/generate/components/validations_generated.go,
// parsed as Go source) and the envelope (group, served versions, names) from the
// kubevirt.io/api module, mirroring components.NewVirtualMachineCrd and
// NewVirtualMachineInstanceCrd.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// source is one pinned upstream module and the CRD files to take from it.
type source struct {
	module  string
	version string
	files   map[string]string // path in the module -> file name under the output folder
}

// The pins. Bump a version here and run `make setup`; the output folder is rebuilt
// when this file changes.
var sources = []source{
	{"github.com/k8snetworkplumbingwg/network-attachment-definition-client", "v1.7.7", map[string]string{
		"artifacts/networks-crd.yaml": "multus/network-attachment-definitions.yaml",
	}},
	// whereabouts, the tenant networks' cluster-wide IPAM (tools/whereabouts builds the
	// plugin at the same version).
	{"github.com/k8snetworkplumbingwg/whereabouts", "v0.9.4", map[string]string{
		"doc/crds/whereabouts.cni.cncf.io_ippools.yaml":                        "whereabouts/ippools.yaml",
		"doc/crds/whereabouts.cni.cncf.io_overlappingrangeipreservations.yaml": "whereabouts/overlappingrangeipreservations.yaml",
	}},
	{"github.com/cilium/cilium", "v1.18.4", map[string]string{
		"pkg/k8s/apis/cilium.io/client/crds/v2/ciliumnetworkpolicies.yaml":            "cilium/ciliumnetworkpolicies.yaml",
		"pkg/k8s/apis/cilium.io/client/crds/v2/ciliumclusterwidenetworkpolicies.yaml": "cilium/ciliumclusterwidenetworkpolicies.yaml",
	}},
	{"sigs.k8s.io/gateway-api", "v1.4.1", map[string]string{
		"config/crd/standard/gateway.networking.k8s.io_gatewayclasses.yaml":     "gateway-api/gatewayclasses.yaml",
		"config/crd/standard/gateway.networking.k8s.io_gateways.yaml":           "gateway-api/gateways.yaml",
		"config/crd/standard/gateway.networking.k8s.io_httproutes.yaml":         "gateway-api/httproutes.yaml",
		"config/crd/standard/gateway.networking.k8s.io_grpcroutes.yaml":         "gateway-api/grpcroutes.yaml",
		"config/crd/standard/gateway.networking.k8s.io_referencegrants.yaml":    "gateway-api/referencegrants.yaml",
		"config/crd/standard/gateway.networking.k8s.io_backendtlspolicies.yaml": "gateway-api/backendtlspolicies.yaml",
		// TLSRoute (SNI passthrough) is only in the experimental channel in v1.4.
		"config/crd/experimental/gateway.networking.k8s.io_tlsroutes.yaml": "gateway-api/tlsroutes.yaml",
		// Not written by the operator, but Traefik's experimental channel (which it needs for
		// TLSRoute) watches TCPRoutes too and never starts without their CRD: the
		// experimental-install.yaml that docs/install.md applies has it.
		"config/crd/experimental/gateway.networking.k8s.io_tcproutes.yaml": "gateway-api/tcproutes.yaml",
	}},
	// tools/argocd builds Argo CD's controller and repo server at the same version.
	{"github.com/argoproj/argo-cd/v3", "v3.2.11", map[string]string{
		"manifests/crds/application-crd.yaml": "argocd/applications.yaml",
		"manifests/crds/appproject-crd.yaml":  "argocd/appprojects.yaml",
	}},
}

// The kubevirt module whose generated validation schemas we use. kubevirt.io/api is
// pinned to the same release in go.mod.
const kubevirtModule, kubevirtVersion = "kubevirt.io/kubevirt", "v1.5.0"

func main() {
	out := flag.String("out", "", "folder to write the CRDs into")
	flag.Parse()
	if *out == "" {
		fail(fmt.Errorf("-out is required"))
	}
	for _, s := range sources {
		dir, err := download(s.module, s.version)
		if err != nil {
			fail(err)
		}
		for from, to := range s.files {
			data, err := os.ReadFile(filepath.Join(dir, from))
			if err != nil {
				fail(fmt.Errorf("%s@%s: %w", s.module, s.version, err))
			}
			if err := write(filepath.Join(*out, to), data); err != nil {
				fail(err)
			}
		}
	}
	dir, err := download(kubevirtModule, kubevirtVersion)
	if err != nil {
		fail(err)
	}
	if err := writeKubeVirt(dir, *out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "thirdparty-crds:", err)
	os.Exit(1)
}

// download fetches module@version through the module proxy (verified against go.sum
// semantics by the sum database) and returns its folder in the module cache.
func download(module, version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(raw, &info); jerr != nil && err == nil {
		err = jerr
	}
	if info.Error != "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", module, version, info.Error)
	}
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", module, version, err)
	}
	return info.Dir, nil
}

func write(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// kubevirtValidations parses the CRDsValidation map literal out of KubeVirt's generated
// Go source.
func kubevirtValidations(moduleDir string) (map[string]string, error) {
	file := filepath.Join(moduleDir, "pkg/virt-operator/resource/generate/components/validations_generated.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		return nil, err
	}
	result := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		kv, ok := n.(*ast.KeyValueExpr)
		if !ok {
			return true
		}
		k, kok := kv.Key.(*ast.BasicLit)
		v, vok := kv.Value.(*ast.BasicLit)
		if kok && vok && k.Kind == token.STRING && v.Kind == token.STRING {
			key, err1 := strconv.Unquote(k.Value)
			val, err2 := strconv.Unquote(v.Value)
			if err1 == nil && err2 == nil {
				result[key] = val
			}
		}
		return false
	})
	if len(result) == 0 {
		return nil, fmt.Errorf("%s: no CRDsValidation entries found", file)
	}
	return result, nil
}

func writeKubeVirt(moduleDir, out string) error {
	validations, err := kubevirtValidations(moduleDir)
	if err != nil {
		return err
	}
	age := extv1.CustomResourceColumnDefinition{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"}
	crds := []struct {
		singular, plural, kind string
		short                  []string
		columns                []extv1.CustomResourceColumnDefinition
		status                 bool
	}{
		{"virtualmachine", "virtualmachines", virtv1.VirtualMachineGroupVersionKind.Kind, []string{"vm", "vms"},
			[]extv1.CustomResourceColumnDefinition{age,
				{Name: "Status", Description: "Human Readable Status", Type: "string", JSONPath: ".status.printableStatus"},
				{Name: "Ready", Type: "string", JSONPath: ".status.conditions[?(@.type=='Ready')].status"}}, true},
		{"virtualmachineinstance", "virtualmachineinstances", virtv1.VirtualMachineInstanceGroupVersionKind.Kind, []string{"vmi", "vmis"},
			[]extv1.CustomResourceColumnDefinition{age,
				{Name: "Phase", Type: "string", JSONPath: ".status.phase"},
				{Name: "IP", Type: "string", JSONPath: ".status.interfaces[0].ipAddress"},
				{Name: "NodeName", Type: "string", JSONPath: ".status.nodeName"},
				{Name: "Ready", Type: "string", JSONPath: ".status.conditions[?(@.type=='Ready')].status"}}, false},
	}
	for _, c := range crds {
		raw, ok := validations[c.singular]
		if !ok {
			return fmt.Errorf("kubevirt %s: no validation schema for %q", kubevirtVersion, c.singular)
		}
		var validation extv1.CustomResourceValidation
		if err := yaml.UnmarshalStrict([]byte(raw), &validation); err != nil {
			return fmt.Errorf("kubevirt %s schema: %w", c.singular, err)
		}
		versions := make([]extv1.CustomResourceDefinitionVersion, len(virtv1.ApiSupportedVersions))
		copy(versions, virtv1.ApiSupportedVersions)
		for i := range versions {
			versions[i].Schema = validation.DeepCopy()
			versions[i].AdditionalPrinterColumns = c.columns
			if c.status {
				versions[i].Subresources = &extv1.CustomResourceSubresources{Status: &extv1.CustomResourceSubresourceStatus{}}
			}
		}
		crd := extv1.CustomResourceDefinition{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
			ObjectMeta: metav1.ObjectMeta{Name: c.plural + "." + virtv1.VirtualMachineGroupVersionKind.Group, Labels: map[string]string{virtv1.AppLabel: ""}},
			Spec: extv1.CustomResourceDefinitionSpec{
				Group:    virtv1.VirtualMachineGroupVersionKind.Group,
				Scope:    extv1.NamespaceScoped,
				Versions: versions,
				Names: extv1.CustomResourceDefinitionNames{Plural: c.plural, Singular: c.singular, Kind: c.kind,
					ShortNames: c.short, Categories: []string{"all"}},
			},
		}
		data, err := yaml.Marshal(&crd)
		if err != nil {
			return err
		}
		header := fmt.Sprintf("# Generated at setup from %s@%s validations_generated.go; not committed.\n", kubevirtModule, kubevirtVersion)
		if err := write(filepath.Join(out, "kubevirt", c.plural+".yaml"), append([]byte(header), bytes.TrimSpace(data)...)); err != nil {
			return err
		}
	}
	return nil
}
