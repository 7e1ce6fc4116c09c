package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wstap/wstap/internal/childproc"
)

// uiProc is a wstap process that serves the web UI: `wstap proxy --ui` or `wstap
// open FILE --ui`. The bench starts it itself rather than with childproc.Start,
// because it needs the URL (with the per-run token) that wstap prints on stderr.
type uiProc struct {
	name  string
	cmd   *exec.Cmd
	child *childproc.Child // Cmd only: what the CPU, system call and memory readers need
	addr  string           // the proxy's address (proxy mode)
	url   string           // the URL wstap printed, http://127.0.0.1:PORT/#token=HEX
	base  string           // http://127.0.0.1:PORT
	token string
	ready time.Duration // from the start to the URL printed (open: reading the file)
	http  *http.Client
	done  chan struct{}

	mu    sync.Mutex
	lines []string // the last 40 lines it printed
	bad   []string // lines at level WARN or ERROR
}

var (
	uiURLRE    = regexp.MustCompile(`web UI(?::| at)\s+(http://[^\s;]+)`)
	proxyRE    = regexp.MustCompile(`proxy listening on (\S+)`)
	uiTokenRE  = regexp.MustCompile(`^(http://[^/]+)/#token=([0-9a-f]+)$`)
	errUIEnded = errors.New("exited")
)

// startUIProc runs bin with args (and env added) until it printed the web UI's URL
// (and, for the proxy, its address), at most wait.
func startUIProc(name, bin string, env []string, wait time.Duration, args ...string) (*uiProc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	dieWithBench(cmd) // no wstap left behind if the bench dies
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	p := &uiProc{name: name, cmd: cmd, done: make(chan struct{}),
		http: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.child = &childproc.Child{Name: name, Cmd: cmd}
	urlc, addrc := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if len(p.lines) == 40 {
				p.lines = p.lines[1:]
			}
			p.lines = append(p.lines, line)
			if strings.Contains(line, " level=WARN ") || strings.Contains(line, " level=ERROR ") {
				p.bad = append(p.bad, line)
			}
			p.mu.Unlock()
			if m := uiURLRE.FindStringSubmatch(line); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
			if m := proxyRE.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
		close(p.done)
	}()
	proxy := len(args) > 0 && args[0] == "proxy"
	deadline := time.After(wait)
	for p.url == "" || proxy && p.addr == "" {
		select {
		case u := <-urlc:
			p.url = u
			p.ready = time.Since(start)
		case a := <-addrc:
			p.addr = a
		case <-p.done:
			return nil, fmt.Errorf("%s %w before printing its web UI's URL:\n%s", name, errUIEnded, p.tail())
		case <-deadline:
			p.stop()
			return nil, fmt.Errorf("%s did not print its web UI's URL within %s:\n%s", name, wait, p.tail())
		}
	}
	m := uiTokenRE.FindStringSubmatch(p.url)
	if m == nil {
		p.stop()
		return nil, fmt.Errorf("%s: web UI URL %q: want http://HOST:PORT/#token=HEX", name, p.url)
	}
	p.base, p.token = m[1], m[2]
	fmt.Fprintf(os.Stderr, "%s (pid %d): web UI on %s\n", name, cmd.Process.Pid, p.base)
	return p, nil
}

// tail is the last lines the process printed.
func (p *uiProc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// problems returns the lines it logged at level WARN or ERROR.
func (p *uiProc) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.bad...)
}

// alive returns an error, with what it printed last, once the process has exited.
func (p *uiProc) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s %w:\n%s", p.name, errUIEnded, p.tail())
	default:
		return nil
	}
}

// stop ends the process (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (p *uiProc) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	p.http.CloseIdleConnections()
}

// get asks the UI's API for path (with the token, as a script does) and decodes
// the JSON answer into v; it returns the round trip's time, the answer read
// whole.
func (p *uiProc) get(path string, v any) (time.Duration, error) {
	req, err := http.NewRequest("GET", p.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	start := time.Now()
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: GET %s: %w", p.name, path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	rtt := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: GET %s: %w", p.name, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: GET %s: %s: %s", p.name, path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return 0, fmt.Errorf("%s: GET %s: %w", p.name, path, err)
	}
	return rtt, nil
}

// uiInfo is the part of /api/info the bench reads.
type uiInfo struct {
	Mode    string `json:"mode"`
	History struct {
		Conns int `json:"Conns"`
		Rows  int `json:"Rows"`
	} `json:"history"`
	Lost int64 `json:"lost"`
}

func (p *uiProc) info() (uiInfo, error) {
	var in uiInfo
	_, err := p.get("/api/info", &in)
	return in, err
}

// uiPage is an answer of /api/messages (the rows left out).
type uiPage struct {
	Total  int   `json:"total"`
	TookMS int64 `json:"took_ms"`
	Items  []struct {
		ID int `json:"id"`
	} `json:"items"`
}

// messages asks /api/messages with the query params (url-encoded).
func (p *uiProc) messages(params string) (uiPage, time.Duration, error) {
	var pg uiPage
	rtt, err := p.get("/api/messages?"+params, &pg)
	return pg, rtt, err
}
