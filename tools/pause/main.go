// The pod sandbox's "pause" process, as Kubernetes' own pause image runs it: it holds
// the pod's namespaces open, reaps orphaned children (when it is PID 1 of a shared PID
// namespace) and exits on SIGINT or SIGTERM. Static (no cgo-using packages).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
