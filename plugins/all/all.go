// Package all imports every built-in plugin so that it registers itself.
package all

import (
	_ "github.com/wstap/wstap/plugins/logtap"  // log
	_ "github.com/wstap/wstap/plugins/replace" // replace
	_ "github.com/wstap/wstap/plugins/scope"   // scope
)
