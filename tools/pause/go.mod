// The pause binary of the pod sandbox image the home-cluster harness builds.
module personalcloud.io/tools/pause

go 1.24.0
