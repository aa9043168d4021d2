// belay watch's defaults, in a module of their own: the command line shows them in its help without loading the server.

export const DEFAULT_WATCH_PORT = 7420;
