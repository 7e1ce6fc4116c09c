package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/wstap/wstap/internal/childproc"
)

// startTunnel runs this program again as the raw CONNECT tunnel.
func startTunnel() (*childproc.Child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return childproc.Start("tunnel", exec.Command(exe, "-internal-tunnel"), "")
}

// startMitmdump runs mitmdump on a free loopback port with its CA in confdir.
func startMitmdump(bin, confdir string) (*childproc.Child, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--listen-host", "127.0.0.1", "--listen-port", port, "--ssl-insecure", "-q",
		"--set", "confdir="+confdir)
	return childproc.Start("mitmdump", cmd, addr, filepath.Join(confdir, "mitmproxy-ca-cert.pem"))
}
