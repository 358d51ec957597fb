# Personal Cloud. The README's two commands are `make demo` and `make test`; both
# run `make setup` first, which installs everything on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
JEST := node --experimental-vm-modules --no-warnings=ExperimentalWarning node_modules/jest/bin/jest.js

.PHONY: help setup build gen check-gen lint typecheck test test-unit test-integration test-e2e demo dev-up dev-down bench-solver bench-operator bench-federation clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: ## install npm packages, build kube-apiserver/etcd/kubectl/helm, fetch third-party CRDs
	@bash hack/setup.sh

build: setup ## compile the TypeScript into dist/
	@node_modules/.bin/tsc -p tsconfig.build.json

# generated/: personalcloud.ts from crds/, and kubevirt, multus, cilium, gateway and argocd .ts from the
# third-party CRDs that setup fetched into .cache/crds (their headers name the pinned module@version).
gen: build ## regenerate generated/ from crds/ and .cache/crds
	@node dist/hack/generate-types.js
	@bash hack/sync-chart-crds.sh

check-gen: build ## fail when generated/ is stale against crds/ or .cache/crds
	@node dist/hack/generate-types.js --check
	@bash hack/sync-chart-crds.sh --check

typecheck: setup
	@node_modules/.bin/tsc -p tsconfig.json --noEmit
	@node_modules/.bin/tsc -p tsconfig.image.json --noEmit  # the image compiles from the runtime floors alone

lint: setup ## ESLint (typescript-eslint, no floating promises) and Prettier
	@node_modules/.bin/eslint . && node_modules/.bin/prettier --check .

test: setup check-gen typecheck lint ## the whole suite: unit, integration and end-to-end
	@$(JEST) --selectProjects unit integration e2e

test-unit: setup
	@$(JEST) --selectProjects unit

test-integration: setup
	@$(JEST) --selectProjects integration

test-e2e: setup
	@$(JEST) --selectProjects e2e

demo: build ## the main job: a local federation, examples applied, the result shown
	@bin/pcloud demo

dev-up: build ## a local control plane for a person (kubeconfig in .cache/dev/kubeconfig)
	@bin/pcloud dev up

dev-down: build
	@bin/pcloud dev down

bench-solver: build ## the solver beside LEMON and networkx
	@bash bench/solver/run.sh

bench-operator: build ## 500 Tenants / 2000 Assignments against one real kube-apiserver
	@node dist/bench/operator/run.js

bench-federation: build ## 200 homes against one matchmaker
	@node dist/bench/federation/run.js

clean: ## remove build output (keeps the Go and npm caches)
	rm -rf dist .cache/dev
