package cmd

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/wstap/wstap/plugins"
)

func runPlugins(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("wstap plugins", stderr)
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, r := range plugins.Registered() {
		fmt.Fprintf(tw, "%s\t%s\n", r.Name, r.Description)
		for _, o := range r.Options {
			def := ""
			if o.Default != "" {
				def = " (default " + o.Default + ")"
			}
			fmt.Fprintf(tw, "  %s=\t%s%s\n", o.Name, o.Usage, def)
		}
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\nUse: --hook NAME[:key=value,...]; quote values holding ',' or '=': match='a,b'.")
	return exitOK
}
