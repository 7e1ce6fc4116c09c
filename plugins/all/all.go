// Package all imports every built-in plugin so that it registers itself.
package all

import (
	_ "github.com/wstap/wstap/plugins/aes"     // aes
	_ "github.com/wstap/wstap/plugins/base64"  // base64
	_ "github.com/wstap/wstap/plugins/deflate" // deflate
	_ "github.com/wstap/wstap/plugins/drop"    // drop
	_ "github.com/wstap/wstap/plugins/filter"  // filter
	_ "github.com/wstap/wstap/plugins/gzip"    // gzip
	_ "github.com/wstap/wstap/plugins/hex"     // hex
	_ "github.com/wstap/wstap/plugins/json"    // json
	_ "github.com/wstap/wstap/plugins/logtap"  // log
	_ "github.com/wstap/wstap/plugins/replace" // replace
	_ "github.com/wstap/wstap/plugins/scope"   // scope
	_ "github.com/wstap/wstap/plugins/xor"     // xor
)
