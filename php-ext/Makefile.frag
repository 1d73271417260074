# Built by cargo (see config.m4); `make install` copies modules/suitex_events.so.
$(phplibdir)/suitex_events.so:
	cd $(SUITEX_WORKSPACE) && $(SUITEX_ENV) $(CARGO) build --locked -p suitex_events $(SUITEX_CARGO_FLAGS)
	mkdir -p $(phplibdir)
	cp $(SUITEX_WORKSPACE)/target/$(SUITEX_PROFILE)/libsuitex_events_php.so $@

.PHONY: $(phplibdir)/suitex_events.so
