module github.com/wstap/wstap

go 1.26.8

require (
	github.com/coder/websocket v1.8.15 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/klauspost/compress v1.20.4 // indirect
	go.uber.org/goleak v1.3.0 // indirect
)
