package testbed_test

import (
	"net"
	"os/exec"
	"strings"
)

type netAddr = net.Addr

func dockerOut(args ...string) (string, error) {
	out, err := exec.Command("docker", args...).Output()
	return strings.TrimSpace(string(out)), err
}
