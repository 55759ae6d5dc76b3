// An HTTP transport for the development node that accepts REST API compatibility version 9.
//
// The newest Elasticsearch line that runs on Java 17 is 8.x, while the product's Python client is
// 9.x and marks every request "compatible-with=9"; an 8.x node rejects that header outright.
// This transport is the stock Netty one with a pipeline step that asks for version 8 instead, so
// the unmodified 9.x client (and the product's code on top of it) talks to the 8.x node. It is
// enabled with `http.type: cadenza-netty4` and only ever used by `cadenza dev services`.
// It replaces the transport-netty4 module's entry class (Netty4Plugin is not extensible, so a
// separate plugin cannot add a transport next to it) and keeps everything that class provides.
// It also answers `GET /` and `HEAD /` (info and ping), which 8.x serves from the rest-root module
// that is not published as a jar.
package dev.cadenza.devservices;

import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiConsumer;
import java.util.function.Predicate;
import java.util.function.Supplier;

import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpRequest;

import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.ClusterName;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.network.NetworkService;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.common.util.BigArrays;
import org.elasticsearch.common.util.PageCacheRecycler;
import org.elasticsearch.common.util.concurrent.ThreadContext;
import org.elasticsearch.http.HttpPreRequest;
import org.elasticsearch.http.HttpServerTransport;
import org.elasticsearch.http.netty4.Netty4HttpServerTransport;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.indices.breaker.CircuitBreakerService;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.telemetry.tracing.Tracer;
import org.elasticsearch.threadpool.ThreadPool;
import org.elasticsearch.transport.netty4.Netty4Plugin;
import org.elasticsearch.transport.netty4.SharedGroupFactory;
import org.elasticsearch.transport.netty4.TLSConfig;
import org.elasticsearch.xcontent.NamedXContentRegistry;
import org.elasticsearch.xcontent.XContentBuilder;

public class CadenzaCompatPlugin extends Netty4Plugin implements ActionPlugin {
    public static final String HTTP_TYPE = "cadenza-netty4";

    @Override
    public Map<String, Supplier<HttpServerTransport>> getHttpTransports(
        Settings settings,
        ThreadPool threadPool,
        BigArrays bigArrays,
        PageCacheRecycler pageCacheRecycler,
        CircuitBreakerService circuitBreakerService,
        NamedXContentRegistry xContentRegistry,
        NetworkService networkService,
        HttpServerTransport.Dispatcher dispatcher,
        BiConsumer<HttpPreRequest, ThreadContext> perRequestThreadContext,
        ClusterSettings clusterSettings,
        Tracer tracer
    ) {
        Map<String, Supplier<HttpServerTransport>> transports = new HashMap<>(super.getHttpTransports(
            settings, threadPool, bigArrays, pageCacheRecycler, circuitBreakerService, xContentRegistry,
            networkService, dispatcher, perRequestThreadContext, clusterSettings, tracer));
        transports.put(HTTP_TYPE, () -> new Netty4HttpServerTransport(
            settings, networkService, threadPool, xContentRegistry, dispatcher, clusterSettings,
            new SharedGroupFactory(settings), tracer, TLSConfig.noTLS(), null, null
        ) {
            @Override
            protected void populatePerRequestThreadContext(RestRequest request, ThreadContext threadContext) {
                perRequestThreadContext.accept(request.getHttpRequest(), threadContext);
            }

            @Override
            public ChannelHandler configureServerChannelHandler() {
                ChannelHandler stock = super.configureServerChannelHandler();
                return new CompatInitializer(stock);
            }
        });
        return transports;
    }

    @Override
    public Collection<RestHandler> getRestHandlers(
        Settings settings,
        NamedWriteableRegistry namedWriteableRegistry,
        RestController restController,
        ClusterSettings clusterSettings,
        IndexScopedSettings indexScopedSettings,
        SettingsFilter settingsFilter,
        IndexNameExpressionResolver indexNameExpressionResolver,
        Supplier<DiscoveryNodes> nodesInCluster,
        Predicate<NodeFeature> clusterSupportsFeature
    ) {
        return List.of(new RootHandler(settings));
    }

    static final class RootHandler extends BaseRestHandler {
        private final String nodeName;
        private final String clusterName;

        RootHandler(Settings settings) {
            this.nodeName = Node.NODE_NAME_SETTING.get(settings);
            this.clusterName = ClusterName.CLUSTER_NAME_SETTING.get(settings).value();
        }

        @Override
        public String getName() {
            return "cadenza_root_action";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            return channel -> {
                Build build = Build.current();
                XContentBuilder body = channel.newBuilder();
                body.startObject()
                    .field("name", nodeName)
                    .field("cluster_name", clusterName)
                    .startObject("version")
                    .field("number", build.qualifiedVersion())
                    .field("build_flavor", build.flavor())
                    .field("build_type", build.type().displayName())
                    .field("build_hash", build.hash())
                    .field("build_date", build.date())
                    .field("build_snapshot", build.isSnapshot())
                    .field("lucene_version", org.apache.lucene.util.Version.LATEST.toString())
                    .field("minimum_wire_compatibility_version", build.minWireCompatVersion())
                    .field("minimum_index_compatibility_version", build.minIndexCompatVersion())
                    .endObject()
                    .field("tagline", "You Know, for Search")
                    .endObject();
                channel.sendResponse(new RestResponse(RestStatus.OK, body));
            };
        }
    }

    @ChannelHandler.Sharable
    static final class CompatInitializer extends ChannelInitializer<Channel> {
        private final ChannelHandler stock;

        CompatInitializer(ChannelHandler stock) {
            this.stock = stock;
        }

        @Override
        protected void initChannel(Channel ch) {
            // The stock initializer runs at once (the channel is registered) and names its decoder "decoder".
            ch.pipeline().addLast(stock);
            ch.pipeline().addAfter("decoder", "cadenza_compat", new CompatRewriter());
        }
    }

    @ChannelHandler.Sharable
    static final class CompatRewriter extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (msg instanceof HttpRequest request) {
                rewrite(request.headers(), "Accept");
                rewrite(request.headers(), "Content-Type");
            }
            ctx.fireChannelRead(msg);
        }

        private static void rewrite(HttpHeaders headers, String name) {
            String value = headers.get(name);
            if (value != null && value.contains("compatible-with=9")) {
                headers.set(name, value.replace("compatible-with=9", "compatible-with=8"));
            }
        }
    }
}
