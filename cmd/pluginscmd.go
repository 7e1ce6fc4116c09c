package cmd

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/wstap/wstap/plugins"
)

// pluginsHelp is the help of wstap plugins.
const pluginsHelp = `Usage: wstap plugins

Lists the built-in plugins, their options and defaults, for --hook NAME[:key=value,...]
(or a config file's hooks). Codecs decode for the hooks after them; hooks rewrite,
drop (drop, filter) or inject messages, which changes the traffic; scope limits the
hooks after it to some URLs. To narrow only what the terminal shows, use --show.
`

func runPlugins(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("wstap plugins", pluginsHelp, stdout)
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
	fmt.Fprintln(stdout, "Hooks change the traffic (filter and drop keep messages from their peer); --show 'dir=s2c,match=…' only narrows the view.")
	return exitOK
}
