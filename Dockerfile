# The Sluice image: the static binary and nothing else. `make image` builds
# bin/sluice-static and this image from bin/ as the build context, so
# nothing is pulled (FROM scratch) and nothing else is copied in.
FROM scratch
COPY sluice-static /sluice
EXPOSE 7071 7946 7946/udp 8081 9092
ENTRYPOINT ["/sluice"]
