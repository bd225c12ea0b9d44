//! Reading `[serve]`: the web view the daemon runs beside its syncs.

use super::*;

impl Reader<'_> {
    pub(super) fn serve(&mut self, section: Table<'_, '_>) -> Option<Option<ServeConfig>> {
        self.check_keys(&section, SERVE_KEYS);
        let default: std::net::SocketAddr = crate::web::DEFAULT_LISTEN.parse().expect("a valid address");
        let listen_field = section.get("listen");
        let at = listen_field.as_ref().map_or(section.at, Field::at);
        let listen = self.optional(listen_field, default, |f| {
            const EXPECTED: &str = "an address and port, such as \"127.0.0.1:8767\"";
            f.string(EXPECTED)?.parse().map_err(|_| f.expected(EXPECTED))
        });
        let token_file = match section.get("token_file") {
            None => Some(None),
            Some(field) => {
                let path = field.path(&self.base_dir);
                self.keep(path).map(Some)
            }
        };
        let (listen, token_file) = (listen?, token_file?);
        if let Err(message) = crate::web::check_listen(listen, token_file.is_some()) {
            self.problem(at, message.replace("--token-file FILE", "token_file"));
            return None;
        }
        Some(Some(ServeConfig { listen, token_file }))
    }
}
