package capture

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// frame describes a crafted Ethernet frame.
type frame struct {
	v6       bool
	proto    string // tcp, udp, sctp, icmp, icmp6, arp
	src, dst string
	sport    uint16
	dport    uint16
	fragOff  uint16 // IPv4 fragment offset (in 8-byte units)
	ipv4Opts bool   // IPv4 header with options (IHL 6)
}

func (f frame) bytes(t *testing.T) []byte {
	t.Helper()
	eth := &layers.Ethernet{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
	}
	var ls []gopacket.SerializableLayer
	if f.proto == "arp" {
		eth.EthernetType = layers.EthernetTypeARP
		ls = []gopacket.SerializableLayer{eth, &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: eth.SrcMAC, SourceProtAddress: net.ParseIP(f.src).To4(),
			DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP(f.dst).To4(),
		}}
	} else {
		var ipProto layers.IPProtocol
		switch f.proto {
		case "tcp":
			ipProto = layers.IPProtocolTCP
		case "udp":
			ipProto = layers.IPProtocolUDP
		case "sctp":
			ipProto = layers.IPProtocolSCTP
		case "icmp":
			ipProto = layers.IPProtocolICMPv4
		case "icmp6":
			ipProto = layers.IPProtocolICMPv6
		default:
			t.Fatalf("bad proto %q", f.proto)
		}
		var netLayer gopacket.NetworkLayer
		if f.v6 {
			eth.EthernetType = layers.EthernetTypeIPv6
			ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: ipProto,
				SrcIP: net.ParseIP(f.src), DstIP: net.ParseIP(f.dst)}
			netLayer = ip
			ls = append(ls, eth, ip)
		} else {
			eth.EthernetType = layers.EthernetTypeIPv4
			ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: ipProto, FragOffset: f.fragOff,
				SrcIP: net.ParseIP(f.src).To4(), DstIP: net.ParseIP(f.dst).To4()}
			if f.ipv4Opts {
				ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
			}
			netLayer = ip
			ls = append(ls, eth, ip)
		}
		switch f.proto {
		case "tcp":
			tcp := &layers.TCP{SrcPort: layers.TCPPort(f.sport), DstPort: layers.TCPPort(f.dport), Window: 100, ACK: true}
			tcp.SetNetworkLayerForChecksum(netLayer)
			ls = append(ls, tcp)
		case "udp":
			udp := &layers.UDP{SrcPort: layers.UDPPort(f.sport), DstPort: layers.UDPPort(f.dport)}
			udp.SetNetworkLayerForChecksum(netLayer)
			ls = append(ls, udp)
		case "sctp":
			ls = append(ls, &layers.SCTP{SrcPort: layers.SCTPPort(f.sport), DstPort: layers.SCTPPort(f.dport)})
		case "icmp":
			ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)})
		case "icmp6":
			icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
			icmp.SetNetworkLayerForChecksum(netLayer)
			ls = append(ls, icmp)
		}
		ls = append(ls, gopacket.Payload("hello"))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize %+v: %v", f, err)
	}
	return buf.Bytes()
}

// frames used by the table below.
var (
	tcp4     = frame{proto: "tcp", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80}
	tcp4Opts = frame{proto: "tcp", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, ipv4Opts: true}
	tcp4Frag = frame{proto: "tcp", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, fragOff: 100}
	udp4     = frame{proto: "udp", src: "10.0.0.1", dst: "192.168.1.9", sport: 5353, dport: 53}
	sctp4    = frame{proto: "sctp", src: "10.0.0.1", dst: "10.0.0.2", sport: 1000, dport: 80}
	icmp4    = frame{proto: "icmp", src: "10.0.0.1", dst: "10.0.0.2"}
	tcp6     = frame{v6: true, proto: "tcp", src: "2001:db8::1", dst: "2001:db8:1::2", sport: 40000, dport: 443}
	udp6     = frame{v6: true, proto: "udp", src: "fe80::1", dst: "ff02::fb", sport: 5353, dport: 5353}
	icmp6    = frame{v6: true, proto: "icmp6", src: "::1", dst: "::1"}
	arp4     = frame{proto: "arp", src: "10.0.0.1", dst: "10.0.0.2"}
)

var allFrames = map[string]frame{
	"tcp4": tcp4, "tcp4Opts": tcp4Opts, "tcp4Frag": tcp4Frag, "udp4": udp4, "sctp4": sctp4, "icmp4": icmp4,
	"tcp6": tcp6, "udp6": udp6, "icmp6": icmp6, "arp4": arp4,
}

func TestCompileMatches(t *testing.T) {
	raw := map[string][]byte{}
	for name, f := range allFrames {
		raw[name] = f.bytes(t)
	}
	tests := []struct {
		expr  string
		match string // space-separated names of allFrames that must match; all others must not
	}{
		{"", "tcp4 tcp4Opts tcp4Frag udp4 sctp4 icmp4 tcp6 udp6 icmp6 arp4"},
		{"ip", "tcp4 tcp4Opts tcp4Frag udp4 sctp4 icmp4"},
		{"ip6", "tcp6 udp6 icmp6"},
		{"arp", "arp4"},
		{"tcp", "tcp4 tcp4Opts tcp4Frag tcp6"},
		{"udp", "udp4 udp6"},
		{"sctp", "sctp4"},
		{"icmp", "icmp4"},
		{"icmp6", "icmp6"},
		{"not ip and not ip6", "arp4"},
		{"! tcp && ! udp", "sctp4 icmp4 icmp6 arp4"},
		{"tcp or udp", "tcp4 tcp4Opts tcp4Frag udp4 tcp6 udp6"},
		{"tcp || udp", "tcp4 tcp4Opts tcp4Frag udp4 tcp6 udp6"},

		// ports: IPv4 header length honoured, non-first fragments excluded
		{"port 80", "tcp4 tcp4Opts sctp4"},
		{"tcp port 80", "tcp4 tcp4Opts"},
		{"udp port 80", ""},
		{"sctp port 80", "sctp4"},
		{"dst port 80", "tcp4 tcp4Opts sctp4"},
		{"src port 80", ""},
		{"src port 40000", "tcp4 tcp4Opts tcp6"},
		{"tcp src port 40000", "tcp4 tcp4Opts tcp6"},
		{"src or dst port 53", "udp4"},
		{"src and dst port 5353", "udp6"},
		{"src and dst port 53", ""},
		{"port 443", "tcp6"},
		{"tcp dst port 443", "tcp6"},
		{"udp port 5353", "udp4 udp6"},
		{"port 80 or 443", "tcp4 tcp4Opts sctp4 tcp6"},
		{"port 80 or 443 or 53", "tcp4 tcp4Opts sctp4 tcp6 udp4"},
		{"portrange 50-100", "tcp4 tcp4Opts sctp4 udp4"},
		{"tcp portrange 443-40000", "tcp4 tcp4Opts tcp6"},
		{"udp dst portrange 5353-5353", "udp6"},
		{"not port 80", "tcp4Frag udp4 icmp4 tcp6 udp6 icmp6 arp4"},

		// hosts and nets
		{"host 10.0.0.2", "tcp4 tcp4Opts tcp4Frag sctp4 icmp4 arp4"}, // libpcap: also ARP
		{"src host 10.0.0.1", "tcp4 tcp4Opts tcp4Frag udp4 sctp4 icmp4 arp4"},
		{"arp host 10.0.0.2", "arp4"},
		{"arp dst host 10.0.0.1", ""},
		{"dst host 10.0.0.1", ""},
		{"dst 192.168.1.9", "udp4"},
		{"ip host 10.0.0.2", "tcp4 tcp4Opts tcp4Frag sctp4 icmp4"},
		{"src and dst host 10.0.0.1", ""},
		{"host 2001:db8::1", "tcp6"},
		{"ip6 dst host 2001:db8:1::2", "tcp6"},
		{"host ::1", "icmp6"},
		{"src and dst host ::1", "icmp6"},
		{"host fe80::1 or ff02::fb", "udp6"},
		{"net 10.0.0.0/8", "tcp4 tcp4Opts tcp4Frag udp4 sctp4 icmp4 arp4"},
		{"ip net 10.0.0.0/8", "tcp4 tcp4Opts tcp4Frag udp4 sctp4 icmp4"},
		{"dst net 192.168.0.0/16", "udp4"},
		{"net 192.168.1.9", "udp4"},
		{"net 0.0.0.0/0", "tcp4 tcp4Opts tcp4Frag udp4 sctp4 icmp4 arp4"},
		{"net 2001:db8::/32", "tcp6"},
		{"dst net 2001:db8:1::/48", "tcp6"},
		{"dst net 2001:db8::/48", ""},
		{"src net 2001:db8::/48", "tcp6"},
		{"net fe80::/10", "udp6"},
		{"net ff00::/8", "udp6"},
		{"src 10.0.0.0/8 and udp", "udp4"},

		// combinations; and/or are left-associative with equal precedence
		{"tcp and port 80", "tcp4 tcp4Opts"},
		{"host 10.0.0.2 and not port 80", "tcp4Frag icmp4 arp4"},
		{"not host 10.0.0.2 and 10.0.0.1", "udp4"}, // = (not host .2) and host .1
		{"tcp or udp and port 53", "udp4"},         // = (tcp or udp) and port 53
		{"tcp or (udp and port 53)", "tcp4 tcp4Opts tcp4Frag udp4 tcp6"},
		{"(tcp port 80 or udp port 53) and src host 10.0.0.1", "tcp4 tcp4Opts udp4"},
		{"not (tcp or udp or icmp)", "sctp4 icmp6 arp4"},
		{"not not tcp", "tcp4 tcp4Opts tcp4Frag tcp6"},
		{"TCP PORT 80", "tcp4 tcp4Opts"},
		{"(((ip6)))", "tcp6 udp6 icmp6"},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			prog, err := Compile(tc.expr, 0)
			if err != nil {
				t.Fatal(err)
			}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				t.Fatalf("NewVM: %v\n%s", err, disasm(prog))
			}
			want := map[string]bool{}
			for _, n := range strings.Fields(tc.match) {
				want[n] = true
			}
			for name, b := range raw {
				n, err := vm.Run(b)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if got := n > 0; got != want[name] {
					t.Errorf("%q on %s: matched=%v, want %v\n%s", tc.expr, name, got, want[name], disasm(prog))
				}
				if n > 0 && n != DefaultSnaplen {
					t.Errorf("%q on %s: returned %d, want the snaplen %d", tc.expr, name, n, DefaultSnaplen)
				}
			}
		})
	}
}

func disasm(prog []bpf.Instruction) string {
	var sb strings.Builder
	for i, ins := range prog {
		fmt.Fprintf(&sb, "%3d %v\n", i, ins)
	}
	return sb.String()
}

func TestCompileSnaplen(t *testing.T) {
	prog, err := Compile("tcp", 100)
	if err != nil {
		t.Fatal(err)
	}
	if last := prog[len(prog)-2]; last != (bpf.RetConstant{Val: 100}) {
		t.Fatalf("accept = %v, want ret #100", last)
	}
	prog, err = Compile("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(prog) != 1 || prog[0] != (bpf.RetConstant{Val: DefaultSnaplen}) {
		t.Fatalf("empty filter = %v", prog)
	}
	// A truncated frame (here only the Ethernet header of a TCP frame) is
	// rejected, as the kernel does when a load runs past the end.
	vm, _ := bpf.NewVM(mustCompile(t, "port 80"))
	if n, _ := vm.Run(tcp4.bytes(t)[:20]); n != 0 {
		t.Fatalf("truncated frame accepted")
	}
}

func mustCompile(t *testing.T, expr string) []bpf.Instruction {
	t.Helper()
	prog, err := Compile(expr, 0)
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

// TestCompileLongJumps builds a filter whose jumps reach past the 255
// instructions a conditional jump can skip, which the generator must lay
// out with unconditional jumps.
func TestCompileLongJumps(t *testing.T) {
	var hosts []string
	for i := 1; i <= 60; i++ {
		hosts = append(hosts, fmt.Sprintf("2001:db8::%x", i))
	}
	// "host A or B or ..." over 60 IPv6 hosts, then a final IPv4 test.
	expr := "(host " + strings.Join(hosts, " or ") + ") or host 10.0.0.2"
	prog := mustCompile(t, expr)
	if len(prog) < 300 {
		t.Fatalf("program has only %d instructions; the test needs > 255", len(prog))
	}
	hasJa := false
	for _, ins := range prog {
		if _, ok := ins.(bpf.Jump); ok {
			hasJa = true
		}
	}
	if !hasJa {
		t.Fatalf("no long jumps in a %d-instruction program", len(prog))
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	check := func(f frame, want bool) {
		t.Helper()
		n, err := vm.Run(f.bytes(t))
		if err != nil || (n > 0) != want {
			t.Errorf("%s -> %s: matched=%v err=%v, want %v", f.src, f.dst, n > 0, err, want)
		}
	}
	for _, i := range []int{1, 2, 30, 59, 60} {
		f := tcp6
		f.dst = fmt.Sprintf("2001:db8::%x", i)
		check(f, true)
		f.dst, f.src = f.src, "2001:db8::ffff"
		check(f, true)
	}
	f := tcp6
	f.src, f.dst = "2001:db8::ffff", "2001:db8::fffe"
	check(f, false)
	check(tcp4, true)
	check(udp4, false)
	check(arp4, true) // libpcap: an IPv4 host also matches ARP

	// And the same under "not", whose jumps go the other way.
	prog = mustCompile(t, "not ("+expr+")")
	vm, err = bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	check(tcp4, false)
	check(udp4, true)
	check(f, true)
}

func TestCompileErrors(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"foo", `unsupported keyword "foo"`},
		{"80", "needs a keyword"},
		{"8000-8080", "needs a keyword"},
		{"::1", "needs a keyword"},
		{"10.0.0.0/8 and udp", "needs a keyword"},
		{"host", "missing value"},
		{"tcp port", "missing value"},
		{"port http", "not a port number"},
		{"port 70000", "not a port number"},
		{"portrange 90-80", "90 > 80"},
		{"portrange 80", "not LOW-HIGH"},
		{"host example.com", "not an IPv4 or IPv6 address"},
		{"host fe80::1%eth0", "not an IPv4 or IPv6 address"},
		{"host 10.0.0.0/8", "not an IPv4 or IPv6 address"},
		{"net 10.0.0.1/8", "bits set outside"},
		{"net banana", "not an address"},
		{"tcp host 10.0.0.1", `"tcp" modifier applied to IPv4 host`},
		{"ip6 host 10.0.0.1", `"ip6" modifier applied to IPv4 host`},
		{"ip host ::1", `"ip" modifier applied to IPv6 host`},
		{"ip port 80", `"ip" modifier applied to port`},
		{"tcp and", `"and" at the end`},
		{"(tcp", `missing ")"`},
		{"tcp)", `unexpected ")"`},
		{"tcp udp", `unexpected "udp"`},
		{"not", "unexpected end"},
		{"tcp & udp", `unexpected '&'`},
		{"ether host 01:02:03:04:05:06", `unsupported keyword "ether"`},
		{"tcp[13] & 2 != 0", "unexpected"},
		{"vlan 100", `unsupported keyword "vlan"`},
		{"host 10.0.0.1 or ether", `host "ether" is not an IPv4`},
		{"()", `unexpected ")"`},
	}
	for _, tc := range tests {
		_, err := Compile(tc.expr, 0)
		if err == nil {
			t.Errorf("Compile(%q) succeeded, want error containing %q", tc.expr, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "capture filter") {
			t.Errorf("Compile(%q) = %v, want error containing %q", tc.expr, err, tc.want)
		}
	}
}

// TestLoopbackPrefix checks the program Open attaches on loopback: the
// packet-type test comes first and rejects PACKET_OUTGOING (4); the rest
// is the user's filter.
func TestLoopbackPrefix(t *testing.T) {
	for _, expr := range []string{"", "tcp port 80"} {
		prog, err := compile(expr, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		if prog[0] != (bpf.LoadExtension{Num: bpf.ExtType}) {
			t.Fatalf("%q: first instruction %v, want ld #type", expr, prog[0])
		}
		j, ok := prog[1].(bpf.JumpIf)
		if !ok || j.Cond != bpf.JumpEqual || j.Val != packetOutgoing {
			t.Fatalf("%q: second instruction %v, want jeq #4", expr, prog[1])
		}
		if target := prog[2+int(j.SkipTrue)]; target != (bpf.RetConstant{Val: 0}) {
			t.Fatalf("%q: an outgoing frame goes to %v, want ret #0", expr, target)
		}
		// Without the prefix (the packet type reads as incoming), the rest
		// is the user's program: run it in the VM.
		rest := prog[2+int(j.SkipFalse):]
		vm, err := bpf.NewVM(rest)
		if err != nil {
			t.Fatalf("%q: %v\n%s", expr, err, disasm(prog))
		}
		n80, _ := vm.Run(tcp4.bytes(t))
		n443, _ := vm.Run(tcp6.bytes(t))
		if n80 == 0 || (expr != "" && n443 != 0) || (expr == "" && n443 == 0) {
			t.Fatalf("%q: after the prefix, port 80 -> %d, port 443 -> %d\n%s", expr, n80, n443, disasm(prog))
		}
		if _, err := bpf.Assemble(prog); err != nil {
			t.Fatal(err)
		}
	}
}
